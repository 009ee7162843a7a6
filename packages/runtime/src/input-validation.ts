import { isIP } from 'node:net';
import { InvalidArgumentError, type FieldViolation } from './errors';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Enough to locate every problem in a large batch without an unbounded error trailer. */
const MAX_REPORTED_VIOLATIONS = 100;

export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}

/** Bounds on one ingest batch, shared by every service that takes batches of events. */
export interface IngestLimits {
  maxBatchSize: number;
  maxJsonBytes: number;
  maxJsonDepth: number;
  maxTextLength: number;
  /** Oldest accepted event time, relative to now. */
  maxEventAgeMs: number;
  /** Clock skew tolerated for times ahead of now. */
  maxFutureSkewMs: number;
}

export const DEFAULT_INGEST_LIMITS: IngestLimits = {
  maxBatchSize: 1000,
  maxJsonBytes: 64 * 1024,
  maxJsonDepth: 32,
  maxTextLength: 10_000,
  maxEventAgeMs: 30 * 24 * 3600 * 1000,
  maxFutureSkewMs: 5 * 60 * 1000,
};

export interface TextRule {
  required?: boolean;
  maxLength: number;
}

export interface JsonRule {
  maxBytes: number;
  maxDepth: number;
}

/**
 * Collects every problem of a request (not just the first), so a client can
 * fix a whole batch at once; `throwIfAny()` turns them into one
 * INVALID_ARGUMENT carrying google.rpc.BadRequest field violations.
 */
export class Violations {
  private readonly found: FieldViolation[] = [];
  private total = 0;

  add(field: string, description: string): void {
    this.total += 1;
    if (this.found.length < MAX_REPORTED_VIOLATIONS) this.found.push({ field, description });
  }

  get count(): number {
    return this.total;
  }

  throwIfAny(): void {
    if (this.total === 0) return;
    const more = this.total - this.found.length;
    throw new InvalidArgumentError(
      this.found,
      more > 0 ? `${this.total} invalid fields (first ${this.found.length} listed)` : undefined,
    );
  }

  /** An empty string means "not given". Returns the lower-cased UUID. */
  uuid(field: string, value: string | undefined, required = false): string | undefined {
    if (value === undefined || value === '') {
      if (required) this.add(field, 'required');
      return undefined;
    }
    if (!isUuid(value)) {
      this.add(field, 'not a UUID');
      return undefined;
    }
    return value.toLowerCase();
  }

  text(field: string, value: string | undefined, rule: TextRule): string | undefined {
    if (value === undefined || value === '') {
      if (rule.required) this.add(field, 'required');
      return rule.required ? undefined : value === '' ? '' : undefined;
    }
    if (value.length > rule.maxLength) {
      this.add(field, `longer than ${rule.maxLength} characters`);
      return undefined;
    }
    if (value.includes('\u0000')) {
      this.add(field, 'contains a NUL character');
      return undefined;
    }
    return value;
  }

  /** JSON text -> the same text, checked for size, syntax, depth and NUL escapes. */
  json(field: string, value: string | undefined, rule: JsonRule): unknown {
    if (value === undefined || value === '') return undefined;
    if (Buffer.byteLength(value, 'utf8') > rule.maxBytes) {
      this.add(field, `JSON larger than ${rule.maxBytes} bytes`);
      return undefined;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch (err) {
      this.add(field, `malformed JSON: ${err instanceof Error ? err.message : 'parse error'}`);
      return undefined;
    }
    const problem = jsonProblem(parsed, rule.maxDepth);
    if (problem) {
      this.add(field, problem);
      return undefined;
    }
    return parsed;
  }

  integer(field: string, value: number | undefined, min: number, max: number): number | undefined {
    if (value === undefined) return undefined;
    if (!Number.isInteger(value) || value < min || value > max) {
      this.add(field, `must be an integer from ${min} to ${max}`);
      return undefined;
    }
    return value;
  }

  /** int64 carried as a decimal string (ts-proto forceLong=string). */
  int64(field: string, value: string | undefined, min: bigint, max: bigint): string | undefined {
    if (value === undefined) return undefined;
    if (!/^-?\d{1,19}$/.test(value)) {
      this.add(field, 'not an integer');
      return undefined;
    }
    const n = BigInt(value);
    if (n < min || n > max) {
      this.add(field, `must be from ${min} to ${max}`);
      return undefined;
    }
    return n.toString();
  }

  ipAddress(field: string, value: string | undefined): string | undefined {
    if (value === undefined || value === '') return undefined;
    if (isIP(value) === 0) {
      this.add(field, 'not an IPv4 or IPv6 address');
      return undefined;
    }
    return value;
  }

  timestamp(field: string, value: Date | undefined, notBefore: Date, notAfter: Date): Date | undefined {
    if (value === undefined) return undefined;
    const ms = value.getTime();
    if (Number.isNaN(ms)) {
      this.add(field, 'not a valid timestamp');
      return undefined;
    }
    if (ms < notBefore.getTime()) {
      this.add(field, `earlier than ${notBefore.toISOString()} (too far in the past)`);
      return undefined;
    }
    if (ms > notAfter.getTime()) {
      this.add(field, `later than ${notAfter.toISOString()} (too far in the future)`);
      return undefined;
    }
    return value;
  }

  /** A proto enum value that must be one of `allowed` (never the _UNSPECIFIED zero). */
  enumValue<E extends number, T>(field: string, value: E, allowed: ReadonlyMap<E, T>): T | undefined {
    const mapped = allowed.get(value);
    if (mapped === undefined) {
      this.add(field, value === 0 ? 'required' : `unknown value ${value}`);
    }
    return mapped;
  }
}

/**
 * Depth limit and PostgreSQL jsonb's one unsupported value (the NUL
 * character, in strings or keys). Recursion is bounded by maxDepth; no
 * allocation per node, since this runs for every JSON field ingested.
 */
function jsonProblem(value: unknown, maxDepth: number, depth = 1): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? 'JSON contains a NUL character' : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  if (depth > maxDepth) return `JSON nested deeper than ${maxDepth} levels`;
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = jsonProblem(item, maxDepth, depth + 1);
      if (problem) return problem;
    }
    return undefined;
  }
  for (const key in value) {
    if (key.includes('\u0000')) return 'JSON contains a NUL character';
    const problem = jsonProblem((value as Record<string, unknown>)[key], maxDepth, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}
