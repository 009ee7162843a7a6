/**
 * Every RPC of the four services, read from the generated grpc-js service
 * definitions, with the shape of its request message (from the .proto files
 * through proto-loader), so that hostile values can be placed in every field
 * of every request without listing fields by hand.
 */
import * as protoLoader from '@grpc/proto-loader';
import { audit, connectionlog, PROTO_ROOT, retention, SERVICE_PROTO_FILES, statussync } from '@mcp/proto';
import type { ServiceName } from '../service-process';

export interface MessageCodec {
  encode(message: never): { finish(): Uint8Array };
  fromPartial(object: never): unknown;
}

export interface MethodInfo {
  service: ServiceName;
  /** e.g. RecordEvents */
  name: string;
  /** e.g. /mcp.connectionlog.v1.ConnectionLogService/RecordEvents */
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  /** Fully qualified, e.g. mcp.connectionlog.v1.RecordEventsRequest */
  requestType: string;
  /** The ts-proto codec of the request. */
  codec: MessageCodec;
}

export type ScalarKind = 'string' | 'bytes' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'double' | 'float' | 'bool' | 'enum';

export interface FieldInfo {
  /** ts-proto property name (lowerCamelCase). */
  name: string;
  /** As in the .proto file, the form field violations name. */
  protoName: string;
  number: number;
  repeated: boolean;
  kind: ScalarKind | 'timestamp' | 'message';
  /** Fully qualified message type when kind is 'message'. */
  messageType?: string;
}

const SERVICES: Array<{ service: ServiceName; fullName: keyof typeof SERVICE_PROTO_FILES; module: Record<string, unknown>; definition: string }> = [
  { service: 'connection-log', fullName: 'mcp.connectionlog.v1.ConnectionLogService', module: connectionlog, definition: 'ConnectionLogServiceService' },
  { service: 'status-sync', fullName: 'mcp.statussync.v1.StatusSyncService', module: statussync, definition: 'StatusSyncServiceService' },
  { service: 'audit', fullName: 'mcp.audit.v1.AuditService', module: audit, definition: 'AuditServiceService' },
  { service: 'retention', fullName: 'mcp.retention.v1.RetentionService', module: retention, definition: 'RetentionServiceService' },
];

const SCALAR_KINDS: Record<string, ScalarKind> = {
  TYPE_STRING: 'string',
  TYPE_BYTES: 'bytes',
  TYPE_INT32: 'int32',
  TYPE_SINT32: 'int32',
  TYPE_SFIXED32: 'int32',
  TYPE_UINT32: 'uint32',
  TYPE_FIXED32: 'uint32',
  TYPE_INT64: 'int64',
  TYPE_SINT64: 'int64',
  TYPE_SFIXED64: 'int64',
  TYPE_UINT64: 'uint64',
  TYPE_FIXED64: 'uint64',
  TYPE_DOUBLE: 'double',
  TYPE_FLOAT: 'float',
  TYPE_BOOL: 'bool',
  TYPE_ENUM: 'enum',
};

interface DescriptorField {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}

const packageDefinition = protoLoader.loadSync(Object.values(SERVICE_PROTO_FILES), { includeDirs: [PROTO_ROOT] });

function snakeCase(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The fields of a message, in field-number order. */
export function messageFields(fullName: string): FieldInfo[] {
  const definition = packageDefinition[fullName] as protoLoader.MessageTypeDefinition<unknown, unknown> | undefined;
  if (!definition) throw new Error(`unknown message ${fullName}`);
  const packageName = fullName.slice(0, fullName.lastIndexOf('.'));
  return (definition.type as { field: DescriptorField[] }).field.map((f) => {
    const base = { name: f.name, protoName: snakeCase(f.name), number: f.number, repeated: f.label === 'LABEL_REPEATED' };
    if (f.type !== 'TYPE_MESSAGE') return { ...base, kind: SCALAR_KINDS[f.type] };
    const messageType = f.typeName.includes('.') ? f.typeName : `${packageName}.${f.typeName}`;
    return messageType === 'google.protobuf.Timestamp' ? { ...base, kind: 'timestamp' } : { ...base, kind: 'message', messageType };
  });
}

function listMethods(): MethodInfo[] {
  return SERVICES.flatMap(({ service, fullName, module, definition }) => {
    const methods = packageDefinition[fullName] as protoLoader.ServiceDefinition;
    const generated = module[definition] as Record<string, { path: string; requestStream: boolean; responseStream: boolean }>;
    return Object.values(generated).map((d) => {
      const name = d.path.slice(d.path.lastIndexOf('/') + 1);
      const requestMessage = methods[name].requestType.type as { name: string };
      const packageName = fullName.slice(0, fullName.lastIndexOf('.'));
      return {
        service,
        name,
        path: d.path,
        requestStream: d.requestStream,
        responseStream: d.responseStream,
        requestType: `${packageName}.${requestMessage.name}`,
        codec: module[requestMessage.name] as MessageCodec,
      };
    });
  });
}

export const METHODS: readonly MethodInfo[] = listMethods();

export function method(name: string): MethodInfo {
  const found = METHODS.find((m) => m.name === name);
  if (!found) throw new Error(`no method ${name}`);
  return found;
}

/** Encodes a partial request of `m` exactly as a generated client would. */
export function encodeRequest(m: MethodInfo, partial: unknown): Buffer {
  return Buffer.from(m.codec.encode(m.codec.fromPartial(partial as never) as never).finish());
}
