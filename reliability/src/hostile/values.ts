/**
 * The hostile values, by the kind of field they go into, each with the wire
 * bytes that carry it (see wire.ts).
 */
import { raw, type RawValue } from './wire';
import type { FieldInfo } from './catalog';

export interface HostileValue {
  label: string;
  value: RawValue;
}

/** What must happen to a string with shell syntax in it: nothing. Checked by the suite after every run. */
export const SHELL_MARKER = `/tmp/hostile-input-${process.pid}-marker`;

/** Payloads for every string field; `#n` makes each stored copy findable. Short enough for 100-character fields. */
export function metacharacterPayloads(n: number): string[] {
  return [
    `'; DROP TABLE hostile_canary; -- " \\ %s%n%x 🙂 #${n}`,
    `$(touch ${SHELL_MARKER}) \`touch ${SHELL_MARKER}\` | & > #${n}`,
  ];
}

/** 0xC3 0x28: bad continuation; 0xFF, 0xFE: never in UTF-8; 0xED 0xA0 0x80: an encoded surrogate; 0xE2 0x82: truncated sequence. */
export const INVALID_UTF8 = Buffer.from([0x61, 0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80, 0x62, 0xe2, 0x82]);

export const STRING_VALUES: HostileValue[] = [
  { label: 'NUL byte', value: raw.string('before\u0000after') },
  { label: 'only a NUL byte', value: raw.string('\u0000') },
  { label: 'invalid UTF-8', value: raw.bytes(INVALID_UTF8) },
];

const INT32_MIN = -(2n ** 31n);
const INT32_MAX = 2n ** 31n - 1n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** google.protobuf.Timestamp seconds of 0001-01-01, 0000-01-01 (proleptic) and 9999-12-31T23:59:59. */
const YEAR_1 = -62135596800n;
const YEAR_0 = -62167219200n;
const YEAR_9999_END = 253402300799n;

const integers = (values: bigint[]): HostileValue[] => values.map((v) => ({ label: `integer ${v}`, value: raw.integer(v) }));

const BY_KIND: Partial<Record<FieldInfo['kind'], HostileValue[]>> = {
  int32: integers([INT32_MIN, -1n, INT32_MAX]),
  uint32: integers([UINT64_MAX & 0xffffffffn]),
  int64: integers([INT64_MIN, -1n, INT64_MAX]),
  uint64: integers([UINT64_MAX, INT64_MAX + 1n]),
  enum: integers([INT32_MIN, -1n, INT32_MAX]),
  double: [
    { label: 'NaN', value: raw.double(Number.NaN) },
    { label: '-Infinity', value: raw.double(Number.NEGATIVE_INFINITY) },
    { label: 'Infinity', value: raw.double(Number.POSITIVE_INFINITY) },
    { label: '-1.8e308', value: raw.double(-Number.MAX_VALUE) },
    { label: '5e-324', value: raw.double(Number.MIN_VALUE) },
  ],
  timestamp: [
    { label: 'year 0', value: raw.timestamp(YEAR_0, 0) },
    { label: 'year 1', value: raw.timestamp(YEAR_1, 0) },
    { label: 'year 9999 end', value: raw.timestamp(YEAR_9999_END, 999_999_999) },
    { label: 'year 10000', value: raw.timestamp(YEAR_9999_END + 1n, 0) },
    { label: 'negative nanos', value: raw.timestamp(1_700_000_000n, -1) },
    { label: 'nanos past one second', value: raw.timestamp(1_700_000_000n, 2_000_000_000) },
    { label: 'int64 min seconds', value: raw.timestamp(INT64_MIN, 0) },
    { label: 'int64 max seconds', value: raw.timestamp(INT64_MAX, 999_999_999) },
  ],
};

/** Boundary values for a numeric, enum or timestamp field; none for strings, bools and bytes. */
export function boundaryValues(kind: FieldInfo['kind']): HostileValue[] {
  return BY_KIND[kind] ?? [];
}

/** A JSON object nested `depth` levels deep: {"a":{"a":…}}. */
export function nestedJsonObject(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** A JSON array nested `depth` levels deep. */
export function nestedJsonArray(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

/** A JSON object of about `bytes` bytes. */
export function hugeJsonObject(bytes: number): string {
  return JSON.stringify({ blob: 'x'.repeat(bytes) });
}
