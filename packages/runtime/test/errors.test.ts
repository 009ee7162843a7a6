import * as grpc from '@grpc/grpc-js';
import { DatabaseError } from 'pg';
import { QueryFailedError } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallHandlers } from '../src/calls';
import {
  AbortedError,
  AlreadyExistsError,
  CancelledError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  decodeBadRequest,
  decodeRetryDelayMs,
  toServiceError,
} from '../src/errors';
import { callUnary, captureLogs, serveEcho, type EchoServer , admitAll } from './support';

function pgError(code: string, message = `pg error ${code}`, constraint?: string): DatabaseError {
  return Object.assign(new DatabaseError(message, message.length, 'error'), { code, severity: 'ERROR', constraint });
}

const violations = [
  { field: 'events[3].connection_id', description: 'not a UUID' },
  { field: 'events[5].event_type', description: 'must be set' },
];

/** Every error a handler may throw, with the status the client must see. */
const domainErrors: Array<[string, Error, grpc.status]> = [
  ['invalid', new InvalidArgumentError(violations), grpc.status.INVALID_ARGUMENT],
  ['not-found', new NotFoundError('agent 42 not found'), grpc.status.NOT_FOUND],
  ['precondition', new FailedPreconditionError('connection is inactive'), grpc.status.FAILED_PRECONDITION],
  ['exists', new AlreadyExistsError('agent exists'), grpc.status.ALREADY_EXISTS],
  ['denied', new PermissionDeniedError('not your agent'), grpc.status.PERMISSION_DENIED],
  ['unauthenticated', new UnauthenticatedError('no credentials'), grpc.status.UNAUTHENTICATED],
  ['exhausted', new ResourceExhaustedError('slow down', 1500), grpc.status.RESOURCE_EXHAUSTED],
  ['unavailable', new UnavailableError('try later'), grpc.status.UNAVAILABLE],
  ['aborted', new AbortedError('conflict'), grpc.status.ABORTED],
  ['cancelled', new CancelledError('gone'), grpc.status.CANCELLED],
  ['deadline', new DeadlineExceededError('too late'), grpc.status.DEADLINE_EXCEEDED],
];

describe('toServiceError', () => {
  it.each(domainErrors)('maps %s to its status code and keeps the message', (_, err, code) => {
    const mapped = toServiceError(err);
    expect(mapped.code).toBe(code);
    expect(mapped.details).toBe(err.message);
  });

  it('lists the violations in the INVALID_ARGUMENT message', () => {
    expect(new InvalidArgumentError(violations).message).toBe(
      'events[3].connection_id: not a UUID; events[5].event_type: must be set',
    );
    expect(new InvalidArgumentError(violations, 'bad batch').message).toBe(
      'bad batch: events[3].connection_id: not a UUID; events[5].event_type: must be set',
    );
  });

  it.each([
    ['08006', grpc.status.UNAVAILABLE],
    ['08001', grpc.status.UNAVAILABLE],
    ['57P01', grpc.status.UNAVAILABLE],
    ['57P02', grpc.status.UNAVAILABLE],
    ['57P03', grpc.status.UNAVAILABLE],
    ['53300', grpc.status.UNAVAILABLE],
    ['57014', grpc.status.DEADLINE_EXCEEDED],
    ['23503', grpc.status.FAILED_PRECONDITION],
    ['23505', grpc.status.ALREADY_EXISTS],
    ['22P02', grpc.status.INVALID_ARGUMENT],
    ['22007', grpc.status.INVALID_ARGUMENT],
    ['22008', grpc.status.INVALID_ARGUMENT],
    ['22003', grpc.status.INVALID_ARGUMENT],
    ['23514', grpc.status.INVALID_ARGUMENT],
    ['22001', grpc.status.INVALID_ARGUMENT],
    ['40001', grpc.status.ABORTED],
    ['40P01', grpc.status.ABORTED],
    ['42P01', grpc.status.INTERNAL],
    ['42601', grpc.status.INTERNAL],
  ])('maps PostgreSQL %s to %s, also inside a TypeORM QueryFailedError', (sqlstate, code) => {
    expect(toServiceError(pgError(sqlstate)).code).toBe(code);
    const wrapped = new QueryFailedError('SELECT secret_column FROM t', [], pgError(sqlstate));
    expect(toServiceError(wrapped).code).toBe(code);
  });

  it('names the constraint but never the SQL or row values', () => {
    const err = new QueryFailedError(
      'INSERT INTO agents (name) VALUES ($1)',
      ['top-secret-name'],
      pgError('23505', 'duplicate key value violates unique constraint "agents_name_key"', 'agents_name_key'),
    );
    const mapped = toServiceError(err);
    expect(mapped.details).toBe('record already exists (constraint agents_name_key)');
    expect(mapped.details).not.toMatch(/INSERT|top-secret/);
  });

  it.each([
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
    Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
    new Error('Connection terminated unexpectedly'),
    new Error('Connection terminated due to connection timeout'),
    new Error('timeout exceeded when trying to connect'),
  ])('maps a lost database connection ($message) to UNAVAILABLE', (err) => {
    expect(toServiceError(err).code).toBe(grpc.status.UNAVAILABLE);
  });

  it('hides unexpected errors behind INTERNAL "internal error" and logs them with their stack', () => {
    const { logger, lines } = captureLogs();
    const mapped = toServiceError(new TypeError('secret detail'), logger);
    expect(mapped.code).toBe(grpc.status.INTERNAL);
    expect(mapped.details).toBe('internal error');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'error', err: { type: 'TypeError', message: 'secret detail' } });
    expect(String((lines[0].err as { stack: string }).stack)).toContain('errors.test.ts');
  });

  it('returns a grpc ServiceError unchanged', () => {
    const original = Object.assign(new Error('x'), { code: grpc.status.NOT_FOUND, details: 'x', metadata: new grpc.Metadata() });
    expect(toServiceError(original)).toBe(original);
  });
});

describe('errors over the wire', () => {
  let echo: EchoServer;
  const { logger, lines } = captureLogs();
  const errorsByKind = new Map<string, Error>([
    ...domainErrors.map(([kind, err]) => [kind, err] as [string, Error]),
    ['unexpected', new Error('secret detail: password=hunter2 at /srv/app/db.ts')],
  ]);

  beforeAll(async () => {
    const handlers = createCallHandlers({ logger, guard: admitAll });
    echo = await serveEcho({
      call: handlers.unary('status:read', async (req: { kind: string }) => {
        throw errorsByKind.get(req.kind);
      }),
    });
  });
  afterAll(() => echo.close());

  it.each(domainErrors.filter(([kind]) => kind !== 'cancelled' && kind !== 'deadline'))(
    '%s reaches the client with its code and message',
    async (kind, err, code) => {
      const outcome = await callUnary(echo.client, { kind });
      expect(outcome.ok).toBe(false);
      if (outcome.ok) return;
      expect(outcome.error.code).toBe(code);
      expect(outcome.error.details).toBe(err.message);
    },
  );

  it('INVALID_ARGUMENT carries google.rpc.BadRequest field violations', async () => {
    const outcome = await callUnary(echo.client, { kind: 'invalid' });
    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(decodeBadRequest(outcome.error.metadata)).toEqual(violations);
  });

  it('RESOURCE_EXHAUSTED carries google.rpc.RetryInfo', async () => {
    const outcome = await callUnary(echo.client, { kind: 'exhausted' });
    if (outcome.ok) throw new Error('expected a failure');
    expect(decodeRetryDelayMs(outcome.error.metadata)).toBe(1500);
    expect(outcome.error.metadata.get('retry-after-ms')).toEqual(['1500']);
  });

  it('an unexpected error reaches the client as INTERNAL "internal error", without detail', async () => {
    const outcome = await callUnary(echo.client, { kind: 'unexpected' });
    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.error.code).toBe(grpc.status.INTERNAL);
    expect(outcome.error.details).toBe('internal error');
    const everything = JSON.stringify([outcome.error.details, outcome.error.message, outcome.error.metadata.toJSON()]);
    expect(everything).not.toMatch(/secret|hunter2|db\.ts|at /);

    const line = lines.find((l) => l.code === 'INTERNAL');
    expect(line).toMatchObject({
      level: 'error',
      method: '/test.Echo/Call',
      err: { message: expect.stringContaining('secret detail') },
    });
    // The log keeps the stack but not the password.
    expect(JSON.stringify(line)).not.toContain('hunter2');
  });
});
