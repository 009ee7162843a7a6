/**
 * The gRPC "richer error model": a google.rpc.Status message, binary-encoded
 * in the `grpc-status-details-bin` trailer, whose `details` carry typed
 * messages (BadRequest, RetryInfo) that clients in any language can decode.
 * The three small messages are encoded by hand, so no generated google/rpc
 * code is needed. Shared by the services' runtime (encoding) and every
 * client (decoding), which is why it lives with the contracts.
 */
import * as grpc from '@grpc/grpc-js';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

export interface FieldViolation {
  /** Path to the offending field, e.g. `events[3].connection_id`. */
  field: string;
  description: string;
}

/** A google.protobuf.Any: a type URL and the encoded message. */
interface AnyDetail {
  typeUrl: string;
  value: Uint8Array;
}

export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
const BAD_REQUEST_TYPE = 'type.googleapis.com/google.rpc.BadRequest';
const RETRY_INFO_TYPE = 'type.googleapis.com/google.rpc.RetryInfo';

/** google.rpc.BadRequest { repeated FieldViolation field_violations = 1; } */
export function badRequestDetail(violations: readonly FieldViolation[]): AnyDetail {
  const w = new BinaryWriter();
  for (const v of violations) {
    w.tag(1, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string(v.field);
    w.tag(2, WireType.LengthDelimited).string(v.description);
    w.join();
  }
  return { typeUrl: BAD_REQUEST_TYPE, value: w.finish() };
}

/** google.rpc.RetryInfo { google.protobuf.Duration retry_delay = 1; } */
export function retryInfoDetail(retryAfterMs: number): AnyDetail {
  const ms = Math.max(0, Math.round(retryAfterMs));
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).fork();
  w.tag(1, WireType.Varint).int64(Math.floor(ms / 1000));
  w.tag(2, WireType.Varint).int32((ms % 1000) * 1_000_000);
  w.join();
  return { typeUrl: RETRY_INFO_TYPE, value: w.finish() };
}

/** Trailer metadata carrying google.rpc.Status { code = 1; message = 2; repeated Any details = 3; }. */
export function statusDetailsMetadata(
  code: grpc.status,
  message: string,
  details: readonly AnyDetail[],
): grpc.Metadata {
  const w = new BinaryWriter();
  w.tag(1, WireType.Varint).int32(code);
  w.tag(2, WireType.LengthDelimited).string(message);
  for (const d of details) {
    w.tag(3, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string(d.typeUrl);
    w.tag(2, WireType.LengthDelimited).bytes(d.value);
    w.join();
  }
  const metadata = new grpc.Metadata();
  metadata.set(STATUS_DETAILS_KEY, Buffer.from(w.finish()));
  return metadata;
}

/** Reads each field of a message: `onField` consumes the ones it knows, everything else is skipped. */
function readFields(bytes: Uint8Array, onField: (fieldNo: number, reader: BinaryReader) => boolean): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (!onField(fieldNo, reader)) reader.skip(wireType, fieldNo);
  }
}

/** google.rpc.Status.details (field 3, repeated google.protobuf.Any). No or malformed trailers yield []. */
function statusDetails(metadata: grpc.Metadata | undefined): AnyDetail[] {
  const details: AnyDetail[] = [];
  if (!metadata) return details;
  try {
    for (const raw of metadata.get(STATUS_DETAILS_KEY)) {
      if (typeof raw === 'string') continue;
      readFields(raw, (statusField, status) => {
        if (statusField !== 3) return false;
        const detail: AnyDetail = { typeUrl: '', value: new Uint8Array() };
        readFields(status.bytes(), (anyField, any) => {
          if (anyField === 1) detail.typeUrl = any.string();
          else if (anyField === 2) detail.value = any.bytes();
          else return false;
          return true;
        });
        details.push(detail);
        return true;
      });
    }
  } catch {
    return []; // a peer's malformed trailer is no reason to fail the caller
  }
  return details;
}

/** The field violations of a google.rpc.BadRequest in the status details, or [] when there is none. */
export function decodeBadRequest(metadata: grpc.Metadata | undefined): FieldViolation[] {
  const violations: FieldViolation[] = [];
  for (const detail of statusDetails(metadata)) {
    if (detail.typeUrl !== BAD_REQUEST_TYPE) continue;
    readFields(detail.value, (badRequestField, badRequest) => {
      if (badRequestField !== 1) return false;
      const violation: FieldViolation = { field: '', description: '' };
      readFields(badRequest.bytes(), (violationField, v) => {
        if (violationField === 1) violation.field = v.string();
        else if (violationField === 2) violation.description = v.string();
        else return false;
        return true;
      });
      violations.push(violation);
      return true;
    });
  }
  return violations;
}

/** The retry delay of a google.rpc.RetryInfo in the status details, in milliseconds, or undefined. */
export function decodeRetryDelayMs(metadata: grpc.Metadata | undefined): number | undefined {
  const detail = statusDetails(metadata).find((d) => d.typeUrl === RETRY_INFO_TYPE);
  if (!detail) return undefined;
  let ms = 0;
  readFields(detail.value, (retryField, retryInfo) => {
    if (retryField !== 1) return false;
    readFields(retryInfo.bytes(), (durationField, duration) => {
      if (durationField === 1) ms += Number(duration.int64()) * 1000;
      else if (durationField === 2) ms += duration.int32() / 1_000_000;
      else return false;
      return true;
    });
    return true;
  });
  return ms;
}
