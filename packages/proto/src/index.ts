import * as path from 'node:path';

export * from './gen';
export { Timestamp } from './gen/google/protobuf/timestamp';
export * from './status-details';
export { uuidv7 } from './ids';

/** Directory holding the .proto sources, for proto-loader (server reflection). */
export const PROTO_ROOT = path.resolve(__dirname, '..', 'proto');
