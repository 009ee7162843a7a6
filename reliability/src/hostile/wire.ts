/**
 * Builds request bytes with one field replaced by exactly the wire bytes
 * given, at any depth: the rest of the message is encoded by the generated
 * codecs, and only the path down to the hostile field is framed by hand. This
 * is how values no generated encoder would produce (invalid UTF-8 in a string,
 * timestamps with negative nanos or seconds past int64 range of dates) reach
 * the server.
 */
import { audit, connectionlog, retention, statussync } from '@mcp/proto';
import { messageFields, type FieldInfo, type MessageCodec } from './catalog';

const MODULES: Record<string, Record<string, unknown>> = {
  'mcp.connectionlog.v1': connectionlog,
  'mcp.statussync.v1': statussync,
  'mcp.audit.v1': audit,
  'mcp.retention.v1': retention,
};

function codecOf(typeName: string): MessageCodec {
  const dot = typeName.lastIndexOf('.');
  const codec = MODULES[typeName.slice(0, dot)]?.[typeName.slice(dot + 1)];
  if (!codec) throw new Error(`no codec for ${typeName}`);
  return codec as MessageCodec;
}

export const WireType = { Varint: 0, Fixed64: 1, LengthDelimited: 2, Fixed32: 5 } as const;

export function varint(value: bigint): Buffer {
  let v = BigInt.asUintN(64, value);
  const out: number[] = [];
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? byte | 0x80 : byte);
  } while (v > 0n);
  return Buffer.from(out);
}

function tag(fieldNumber: number, wireType: number): Buffer {
  return varint(BigInt((fieldNumber << 3) | wireType));
}

export function lengthDelimited(fieldNumber: number, payload: Buffer): Buffer {
  return Buffer.concat([tag(fieldNumber, WireType.LengthDelimited), varint(BigInt(payload.length)), payload]);
}

/** One field's value as it appears on the wire, without its tag. */
export interface RawValue {
  wireType: number;
  bytes: Buffer;
}

export const raw = {
  bytes: (payload: Buffer): RawValue => ({ wireType: WireType.LengthDelimited, bytes: Buffer.concat([varint(BigInt(payload.length)), payload]) }),
  string: (text: string): RawValue => raw.bytes(Buffer.from(text, 'utf8')),
  /** int32, int64, uint32, uint64, enum and bool: negative values sign-extend to ten bytes, as protobuf does. */
  integer: (value: bigint): RawValue => ({ wireType: WireType.Varint, bytes: varint(value) }),
  double(value: number): RawValue {
    const bytes = Buffer.alloc(8);
    bytes.writeDoubleLE(value);
    return { wireType: WireType.Fixed64, bytes };
  },
  float(value: number): RawValue {
    const bytes = Buffer.alloc(4);
    bytes.writeFloatLE(value);
    return { wireType: WireType.Fixed32, bytes };
  },
  /** google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2; } with any values. */
  timestamp: (seconds: bigint, nanos: number): RawValue =>
    raw.bytes(Buffer.concat([tag(1, WireType.Varint), varint(seconds), tag(2, WireType.Varint), varint(BigInt(nanos))])),
};

/** One step down a request: a field, and for repeated fields which element. */
export interface PathStep {
  field: FieldInfo;
  index?: number;
}

/** As field violations name it: `events[0].request_data`. */
export function pathName(path: readonly PathStep[]): string {
  return path.map((s) => (s.index === undefined ? s.field.protoName : `${s.field.protoName}[${s.index}]`)).join('.');
}

type Message = Record<string, unknown>;

function encodeMessage(typeName: string, message: Message): Buffer {
  const codec = codecOf(typeName);
  return Buffer.from(codec.encode(codec.fromPartial(message as never) as never).finish());
}

/** `message` (a partial of `typeName`) with the value at `path` replaced by `value`, as bytes. */
export function encodeWithRawField(typeName: string, message: Message, path: readonly PathStep[], value: RawValue): Buffer {
  const [step, ...rest] = path;
  const { field } = step;
  const without = { ...message, [field.name]: field.repeated ? [] : undefined };
  const head = encodeMessage(typeName, without);
  const current = message[field.name];
  const hostile =
    rest.length === 0 ? Buffer.concat([tag(field.number, value.wireType), value.bytes]) : lengthDelimited(field.number, encodeWithRawField(field.messageType!, (field.repeated ? (current as Message[])[step.index!] : (current as Message | undefined)) ?? {}, rest, value));
  if (!field.repeated) return Buffer.concat([head, hostile]);
  // Every element in order, the hostile one in its place (repeated scalars unpacked, which parsers must accept).
  const elements = (current as unknown[]).map((element, i) => {
    if (i === step.index) return hostile;
    if (field.kind === 'message') return lengthDelimited(field.number, encodeMessage(field.messageType!, element as Message));
    const plain = rawScalar(field, element);
    return Buffer.concat([tag(field.number, plain.wireType), plain.bytes]);
  });
  return Buffer.concat([head, ...elements]);
}

/** The wire form of an ordinary scalar value of `field` (for the untouched elements of a repeated field). */
function rawScalar(field: FieldInfo, value: unknown): RawValue {
  if (field.kind === 'string') return raw.string(value as string);
  if (field.kind === 'double') return raw.double(value as number);
  if (field.kind === 'float') return raw.float(value as number);
  if (field.kind === 'bool') return raw.integer(value ? 1n : 0n);
  return raw.integer(BigInt(value as number | string));
}

/**
 * Every leaf field reachable in `message`: scalars and timestamps, inside
 * singular sub-messages (present or not) and the elements of repeated fields
 * that the message has.
 */
export function leafPaths(typeName: string, message: Message, prefix: PathStep[] = []): PathStep[][] {
  return messageFields(typeName).flatMap((field): PathStep[][] => {
    const value = message[field.name];
    if (field.repeated) {
      const items = (value as unknown[] | undefined) ?? [];
      return items.flatMap((item, index) =>
        field.kind === 'message' ? leafPaths(field.messageType!, item as Message, [...prefix, { field, index }]) : [[...prefix, { field, index }]],
      );
    }
    if (field.kind === 'message') return leafPaths(field.messageType!, (value as Message | undefined) ?? {}, [...prefix, { field }]);
    return [[...prefix, { field }]];
  });
}

function readVarint(bytes: Buffer, at: { pos: number }): bigint {
  let result = 0n;
  for (let shift = 0n; ; shift += 7n) {
    if (at.pos >= bytes.length) throw new Error('truncated varint');
    const byte = bytes[at.pos++];
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return result;
  }
}

/**
 * Offsets where a message's top-level fields end. Cut there, the bytes are a
 * shorter valid message; cut anywhere else, they are not a message at all.
 */
export function fieldBoundaries(bytes: Buffer): Set<number> {
  const ends = new Set<number>([0]);
  const at = { pos: 0 };
  while (at.pos < bytes.length) {
    const wireType = Number(readVarint(bytes, at) & 7n);
    if (wireType === WireType.Varint) readVarint(bytes, at);
    else if (wireType === WireType.Fixed64) at.pos += 8;
    else if (wireType === WireType.LengthDelimited) {
      const length = Number(readVarint(bytes, at));
      at.pos += length;
    }
    else if (wireType === WireType.Fixed32) at.pos += 4;
    else throw new Error(`unexpected wire type ${wireType}`);
    ends.add(at.pos);
  }
  return ends;
}
