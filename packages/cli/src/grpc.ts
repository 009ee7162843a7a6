import * as grpc from '@grpc/grpc-js';
import { connectionlog } from '@mcp/proto';

export type ConnectionLogClient = connectionlog.ConnectionLogServiceClient;

/** What every command gets: where to call, how long to wait, how to print. */
export interface CallContext {
  address: string;
  deadlineMs: number;
  json: boolean;
  /** Sent as `authorization: Bearer <key>` on every call. */
  apiKey: string | undefined;
}

/** Call metadata: the API key, when there is one. */
export function callMetadata(ctx: Pick<CallContext, 'apiKey'>): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (ctx.apiKey) metadata.set('authorization', `Bearer ${ctx.apiKey}`);
  return metadata;
}

export const DEFAULT_ADDRESS = '127.0.0.1:50051';

export function connectionLogClient(address: string): ConnectionLogClient {
  return new connectionlog.ConnectionLogServiceClient(address, grpc.credentials.createInsecure());
}

/** A generated message type (ts-proto MessageFns), reduced to what a call needs. */
export interface MessageType<T> {
  fromPartial(object: any): T;
  toJSON(message: T): unknown;
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

/**
 * One unary call with a deadline and the API key. The request is built with
 * `fromPartial`: generated clients encode every field, so a plain partial
 * object would send `undefined` as the string "undefined".
 */
export function unary<Req, Res>(
  client: grpc.Client,
  method: UnaryMethod<Req, Res>,
  type: MessageType<Req>,
  request: unknown,
  ctx: Pick<CallContext, 'apiKey' | 'deadlineMs'>,
): Promise<Res> {
  const message = type.fromPartial(request);
  return new Promise((resolve, reject) => {
    method.call(client, message, callMetadata(ctx), { deadline: Date.now() + ctx.deadlineMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

export function isServiceError(err: unknown): err is grpc.ServiceError {
  return typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'number' && 'metadata' in err;
}

export function statusName(code: grpc.status): string {
  return grpc.status[code] ?? String(code);
}

/** `error: <CODE>: <details>` plus one line per google.rpc.BadRequest field violation. */
export function describeServiceError(err: grpc.ServiceError, address: string): string[] {
  const lines = [`error: ${statusName(err.code)}: ${err.details}`];
  if (err.metadata) {
    // Loaded only on the error path: @mcp/runtime is the heaviest import.
    const { decodeBadRequest } = require('@mcp/runtime') as typeof import('@mcp/runtime');
    for (const v of decodeBadRequest(err.metadata)) lines.push(`  ${v.field}: ${v.description}`);
  }
  if (err.code === grpc.status.UNAVAILABLE) {
    lines.push(`  (is the service running at ${address}? start the stack with: npm start)`);
  }
  if (err.code === grpc.status.UNAUTHENTICATED) {
    lines.push('  (pass --api-key or set MCP_API_KEY; `npm start` prints a key of the development user)');
  }
  return lines;
}
