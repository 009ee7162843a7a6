/**
 * Domain errors and their gRPC status codes. Handlers and domain code throw
 * these; the call wrappers turn whatever was thrown into a status with
 * `toServiceError`, so no handler builds a grpc status by hand and nothing
 * unexpected (stack, SQL, secrets) ever reaches a client.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from './logger';
import {
  badRequestDetail,
  retryInfoDetail,
  statusDetailsMetadata,
  type FieldViolation,
} from '@mcp/proto';

export { decodeBadRequest, decodeRetryDelayMs, type FieldViolation } from '@mcp/proto';

/** The fixed message clients see for anything not mapped to a specific code. */
export const INTERNAL_ERROR_MESSAGE = 'internal error';

/** Base of every error that maps to a gRPC status code. */
export abstract class StatusError extends Error {
  abstract readonly code: grpc.status;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export class InvalidArgumentError extends StatusError {
  readonly code = grpc.status.INVALID_ARGUMENT;
  constructor(
    readonly violations: FieldViolation[],
    message?: string,
  ) {
    const listed = violations.map((v) => `${v.field}: ${v.description}`).join('; ');
    super(message && listed ? `${message}: ${listed}` : message || listed || 'invalid argument');
  }
}

export class NotFoundError extends StatusError {
  readonly code = grpc.status.NOT_FOUND;
}

export class FailedPreconditionError extends StatusError {
  readonly code = grpc.status.FAILED_PRECONDITION;
}

export class AlreadyExistsError extends StatusError {
  readonly code = grpc.status.ALREADY_EXISTS;
}

export class PermissionDeniedError extends StatusError {
  readonly code = grpc.status.PERMISSION_DENIED;
}

export class UnauthenticatedError extends StatusError {
  readonly code = grpc.status.UNAUTHENTICATED;
}

export class ResourceExhaustedError extends StatusError {
  readonly code = grpc.status.RESOURCE_EXHAUSTED;
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

export class UnavailableError extends StatusError {
  readonly code = grpc.status.UNAVAILABLE;
}

export class AbortedError extends StatusError {
  readonly code = grpc.status.ABORTED;
}

/** The client cancelled the call (CallContext.signal's reason). */
export class CancelledError extends StatusError {
  readonly code = grpc.status.CANCELLED;
}

/** The call's deadline passed (CallContext.signal's reason). */
export class DeadlineExceededError extends StatusError {
  readonly code = grpc.status.DEADLINE_EXCEEDED;
}

function serviceError(code: grpc.status, details: string, metadata = new grpc.Metadata()): grpc.ServiceError {
  return Object.assign(new Error(`${code} ${grpc.status[code]}: ${details}`), { code, details, metadata });
}

function fromStatusError(err: StatusError): grpc.ServiceError {
  if (err instanceof InvalidArgumentError) {
    const metadata = statusDetailsMetadata(err.code, err.message, [badRequestDetail(err.violations)]);
    return serviceError(err.code, err.message, metadata);
  }
  if (err instanceof ResourceExhaustedError) {
    const metadata = statusDetailsMetadata(err.code, err.message, [retryInfoDetail(err.retryAfterMs)]);
    metadata.set('retry-after-ms', String(Math.max(0, Math.round(err.retryAfterMs))));
    return serviceError(err.code, err.message, metadata);
  }
  return serviceError(err.code, err.message);
}

/** Socket-level failures reaching the database: the server is (temporarily) unreachable. */
const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Messages of node-postgres / pg-pool when a connection dies or cannot be obtained in time. */
const CONNECTION_LOST =
  /^Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/;

const SQLSTATE_INVALID_VALUE = new Set(['22P02', '22007', '22008', '22003', '23514', '22001']);
const SQLSTATE_SERVER_UNAVAILABLE = new Set(['57P01', '57P02', '57P03', '53300']);

interface PgDatabaseError extends Error {
  code: string;
  severity?: string;
  constraint?: string;
}

function isPgDatabaseError(err: Error): err is PgDatabaseError {
  // Duck-typed rather than `instanceof pg.DatabaseError`: the class may come from another copy of pg.
  const { code, severity } = err as Partial<PgDatabaseError>;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && typeof severity === 'string';
}

/**
 * Client-facing messages name the constraint at most: the server's own
 * message can quote table names, and its detail quotes row values.
 */
function fromDatabaseError(err: PgDatabaseError): grpc.ServiceError | undefined {
  const { code, constraint } = err;
  const naming = constraint ? ` (constraint ${constraint})` : '';
  if (code.startsWith('08') || SQLSTATE_SERVER_UNAVAILABLE.has(code)) {
    return serviceError(grpc.status.UNAVAILABLE, 'database unavailable');
  }
  if (code === '57014') {
    return serviceError(grpc.status.DEADLINE_EXCEEDED, 'database statement cancelled: deadline exceeded');
  }
  if (code === '23503') {
    return serviceError(grpc.status.FAILED_PRECONDITION, `referenced record does not exist${naming}`);
  }
  if (code === '23505') return serviceError(grpc.status.ALREADY_EXISTS, `record already exists${naming}`);
  if (code === '40001' || code === '40P01') {
    return serviceError(grpc.status.ABORTED, 'transaction conflict, retry the call');
  }
  if (SQLSTATE_INVALID_VALUE.has(code)) {
    // These messages describe the rejected value itself ("invalid input syntax for type uuid: ...").
    const description = code === '23514' ? `value violates a check constraint${naming}` : err.message;
    return serviceError(grpc.status.INVALID_ARGUMENT, `invalid value: ${description}`);
  }
  return undefined;
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number';
}

/** TypeORM's QueryFailedError wraps the pg error as `driverError`. */
function unwrapDriverError(err: Error): Error {
  const driverError = (err as { driverError?: unknown }).driverError;
  return driverError instanceof Error ? driverError : err;
}

/** SQLSTATE of a pg error, also when TypeORM wraps it. */
export function sqlState(err: unknown): string | undefined {
  const e = err as { code?: unknown; driverError?: { code?: unknown } };
  const code = e?.driverError?.code ?? e?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Maps what was thrown to a status the client may see, without logging. */
export function classifyError(err: unknown): grpc.ServiceError {
  if (err instanceof StatusError) return fromStatusError(err);
  if (isServiceError(err)) return err;
  if (err instanceof Error) {
    const cause = unwrapDriverError(err);
    if (isPgDatabaseError(cause)) {
      const mapped = fromDatabaseError(cause);
      if (mapped) return mapped;
    }
    const code = (cause as { code?: unknown }).code;
    if ((typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) || CONNECTION_LOST.test(cause.message)) {
      return serviceError(grpc.status.UNAVAILABLE, 'database unavailable');
    }
  }
  return serviceError(grpc.status.INTERNAL, INTERNAL_ERROR_MESSAGE);
}

/**
 * The status a client should see for `err`. Anything unrecognised becomes
 * INTERNAL "internal error"; the real error, with its stack, goes only to
 * `logger`.
 */
export function toServiceError(err: unknown, logger?: Logger): grpc.ServiceError {
  const mapped = classifyError(err);
  if (mapped.code === grpc.status.INTERNAL && mapped !== err) logger?.error({ err }, 'unexpected error');
  return mapped;
}
