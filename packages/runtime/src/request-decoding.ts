/**
 * Request bytes that do not decode are the caller's error, answered with
 * INVALID_ARGUMENT like any other bad request. Left to themselves, grpc-js
 * answers a throwing deserializer with INTERNAL (a server fault), and the
 * generated decoders replace invalid UTF-8 in string fields with U+FFFD, so
 * a service would store text the caller never sent; a Timestamp outside its
 * defined range decodes to an invalid Date. Here a request that does not
 * decode, whose strings are not valid UTF-8 or whose timestamps are out of
 * range reaches the handler wrappers as a MalformedRequest, which they reject
 * before the handler runs.
 */
import type * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError, type FieldViolation } from './errors';

export class MalformedRequest {
  constructor(
    readonly violations: FieldViolation[],
    readonly problem: string,
  ) {}
}

const snakeCase = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z. */
const TIMESTAMP_MIN_MS = -62_135_596_800_000;
const TIMESTAMP_MAX_MS = 253_402_300_799_999;

/** Why a decoded string or Date is malformed, if it is. */
function leafProblem(leaf: string | Date, bytes: Buffer): string | undefined {
  if (typeof leaf === 'string') {
    // A U+FFFD the caller sent is in the bytes as such; one the lenient decoder put in place of
    // bytes that are not UTF-8 makes a text that the request's bytes do not contain.
    return leaf.includes('\uFFFD') && !bytes.includes(Buffer.from(leaf, 'utf8')) ? 'not valid UTF-8' : undefined;
  }
  const ms = leaf.getTime();
  return ms >= TIMESTAMP_MIN_MS && ms <= TIMESTAMP_MAX_MS ? undefined : 'not a valid timestamp (google.protobuf.Timestamp spans years 1 to 9999)';
}

/** Whether any string or Date in a decoded message is malformed: the every-request check, so it builds no paths. */
function hasMalformedLeaf(value: unknown, bytes: Buffer): boolean {
  if (typeof value === 'string' || value instanceof Date) return leafProblem(value, bytes) !== undefined;
  if (Array.isArray(value)) return value.some((item) => hasMalformedLeaf(item, bytes));
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    for (const key in value) if (hasMalformedLeaf((value as Record<string, unknown>)[key], bytes)) return true;
  }
  return false;
}

/** The malformed strings and Dates of a decoded message, named by path as field violations name fields. */
function malformedLeaves(value: unknown, path: string, bytes: Buffer, into: FieldViolation[]): FieldViolation[] {
  if (typeof value === 'string' || value instanceof Date) {
    const description = leafProblem(value, bytes);
    if (description) into.push({ field: path, description });
  } else if (Array.isArray(value)) value.forEach((item, i) => malformedLeaves(item, `${path}[${i}]`, bytes, into));
  else if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    for (const [key, item] of Object.entries(value)) malformedLeaves(item, path ? `${path}.${snakeCase(key)}` : snakeCase(key), bytes, into);
  }
  return into;
}

function decode(deserialize: grpc.deserialize<unknown>, bytes: Buffer): unknown {
  let request: unknown;
  try {
    request = deserialize(bytes);
  } catch (err) {
    return new MalformedRequest([], `not a valid protobuf message: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!hasMalformedLeaf(request, bytes)) return request;
  return new MalformedRequest(malformedLeaves(request, '', bytes, []), 'malformed request');
}

/** The definition with request deserializers that never throw (see MalformedRequest). */
export function withStrictRequestDecoding(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return Object.fromEntries(
    Object.entries(definition).map(([name, method]) => [
      name,
      { ...method, requestDeserialize: (bytes: Buffer) => decode(method.requestDeserialize, bytes) },
    ]),
  );
}

/** The request itself, or INVALID_ARGUMENT when its bytes did not decode. */
export function wellFormed<Req>(request: Req | MalformedRequest): Req {
  if (request instanceof MalformedRequest) throw new InvalidArgumentError(request.violations, request.problem);
  return request;
}

/** A request stream that fails with INVALID_ARGUMENT at the first message whose bytes did not decode. */
export async function* wellFormedStream<Req>(requests: AsyncIterable<Req | MalformedRequest>): AsyncIterable<Req> {
  for await (const request of requests) yield wellFormed(request);
}
