import * as grpc from '@grpc/grpc-js';
import { decodeBadRequest, retention } from '@mcp/proto';
import { describe, expect, it } from 'vitest';
import { classifyError } from '../src/errors';
import { MalformedRequest, wellFormed, withStrictRequestDecoding } from '../src/request-decoding';

const definition = withStrictRequestDecoding(retention.RetentionServiceService as unknown as grpc.ServiceDefinition);
const decodeHold = (bytes: Buffer) => definition.placeLegalHold.requestDeserialize(bytes);
const valid = retention.PlaceLegalHoldRequest.encode(
  retention.PlaceLegalHoldRequest.fromPartial({ subjectType: 1, reason: 'case 7', startTime: new Date('2026-01-01T00:00:00Z') }),
).finish();

/** PlaceLegalHoldRequest with `reason` (field 5) set to exactly these bytes. */
function withReasonBytes(bytes: number[]): Buffer {
  return Buffer.from([0x2a, bytes.length, ...bytes]);
}

function violations(request: unknown) {
  try {
    wellFormed(request);
  } catch (err) {
    const status = classifyError(err);
    return { code: status.code, violations: decodeBadRequest(status.metadata) };
  }
  throw new Error('expected the request to be refused');
}

describe('strict request decoding', () => {
  it('passes a valid request through unchanged, U+FFFD sent as such included', () => {
    expect(decodeHold(Buffer.from(valid))).toEqual(retention.PlaceLegalHoldRequest.decode(valid));
    const replacementChar = decodeHold(withReasonBytes([...Buffer.from('a\uFFFDb')])) as retention.PlaceLegalHoldRequest;
    expect(wellFormed(replacementChar).reason).toBe('a\uFFFDb');
  });

  it('turns bytes that are not a message into INVALID_ARGUMENT instead of a throwing deserializer (INTERNAL)', () => {
    const request = decodeHold(Buffer.from(valid.subarray(0, valid.length - 1)));
    expect(request).toBeInstanceOf(MalformedRequest);
    expect(violations(request).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('refuses invalid UTF-8 in a string field, naming the field, rather than storing U+FFFD', () => {
    const request = decodeHold(withReasonBytes([0x61, 0xc3, 0x28, 0xff]));
    expect(violations(request)).toEqual({ code: grpc.status.INVALID_ARGUMENT, violations: [{ field: 'reason', description: 'not valid UTF-8' }] });
  });

  it('refuses a timestamp outside google.protobuf.Timestamp range (years 1 to 9999), naming the field', () => {
    // start_time (field 3) = { seconds: 253402300800 } = 10000-01-01T00:00:00Z
    const seconds = [0x80, 0x83, 0xd1, 0xff, 0xaf, 0x07];
    const request = decodeHold(Buffer.from([0x1a, seconds.length + 1, 0x08, ...seconds]));
    expect(violations(request).violations).toEqual([{ field: 'start_time', description: expect.stringContaining('not a valid timestamp') }]);
  });
});
