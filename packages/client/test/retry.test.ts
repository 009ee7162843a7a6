import * as grpc from '@grpc/grpc-js';
import { freePort } from '@mcp/db';
import { connectionlog, retention } from '@mcp/proto';
import { provisionPrincipal } from '@mcp/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionEventRecorder, createRetentionClient, DEFAULT_RETRY_POLICY, retryDecision, retryDelayMs, type RetryEvent } from '../src';
import { createFixture, startConnectionLogEnv, type ConnectionLogEnv } from './harness';

let env: ConnectionLogEnv;

beforeAll(async () => {
  env = await startConnectionLogEnv();
});
afterAll(async () => env?.close());

/** An interceptor that notes the time of every attempt leaving the client. */
function attemptLog(): { times: number[]; interceptor: grpc.Interceptor } {
  const times: number[] = [];
  return { times, interceptor: (options, next) => (times.push(Date.now()), new grpc.InterceptingCall(next(options))) };
}

describe('retries', () => {
  it('never retries INVALID_ARGUMENT', async () => {
    const { connectionId } = await createFixture(env.pg, 'no-retry');
    const retries: RetryEvent[] = [];
    const attempts = attemptLog();
    const client = env.client({ onRetry: (r) => retries.push(r), interceptors: [attempts.interceptor] });
    const err = await client.recordEvents({ events: [{ connectionId, eventType: 9, latencyMs: -5 }] }).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(retries).toEqual([]);
    expect(attempts.times).toHaveLength(1);
    expect((await env.count(connectionId)).rows).toBe(0);
  });

  it('retries UNAVAILABLE with backoff up to maxAttempts, then fails with it', async () => {
    const retries: RetryEvent[] = [];
    const attempts = attemptLog();
    const client = env.client({
      address: `127.0.0.1:${await freePort()}`, // nothing listens
      retry: { maxAttempts: 4, initialBackoffMs: 20, maxBackoffMs: 100 },
      onRetry: (r) => retries.push(r),
      interceptors: [attempts.interceptor],
    });
    const err = (await client.listEvents({}).catch((e) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(attempts.times).toHaveLength(4);
    expect(retries.map((r) => [r.attempt, r.code])).toEqual([1, 2, 3].map((n) => [n, grpc.status.UNAVAILABLE]));
    // Full jitter: each wait is within [0, min(max, initial * 2^retry)].
    retries.forEach((r, i) => expect(r.delayMs).toBeLessThanOrEqual(Math.min(100, 20 * 2 ** i)));
  });

  it('waits the RetryInfo delay of a RESOURCE_EXHAUSTED before retrying, then succeeds', async () => {
    const { userId, token } = await provisionPrincipal(env.pg, { username: 'rate-limited', roles: ['admin'] });
    await env.pg.query(
      `INSERT INTO rate_limits (scope, user_id, endpoint, requests_limit, window_seconds) VALUES ('USER_ENDPOINT', $1, $2, 2, 2)`,
      [userId, '/mcp.connectionlog.v1.ConnectionLogService/ListEvents'],
    );
    await new Promise((r) => setTimeout(r, 300)); // the NOTIFY that refreshes the limits

    // Without retries, the third call in the window is refused with a RetryInfo delay.
    const bare = env.client({ apiKey: token, retry: { maxAttempts: 1 } });
    let refused: grpc.ServiceError | undefined;
    for (let i = 0; i < 6 && !refused; i++) refused = await bare.listEvents({}).then(() => undefined, (e: grpc.ServiceError) => e);
    expect(refused?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(retryDelayMs(refused!.metadata)).toBeGreaterThan(0);

    const retries: RetryEvent[] = [];
    const attempts = attemptLog();
    const client = env.client({ apiKey: token, onRetry: (r) => retries.push(r), interceptors: [attempts.interceptor] });
    for (let i = 0; i < 4; i++) await client.listEvents({});
    const limited = retries.filter((r) => r.code === grpc.status.RESOURCE_EXHAUSTED);
    expect(limited.length).toBeGreaterThan(0);
    for (const r of limited) {
      expect(r.serverDelayMs).toBeGreaterThan(0);
      expect(r.delayMs).toBeGreaterThanOrEqual(r.serverDelayMs!);
    }
    // The attempt after each refusal left no sooner than the server asked.
    const gaps = attempts.times.slice(1).map((t, i) => t - attempts.times[i]);
    const longest = Math.max(...gaps);
    expect(longest).toBeGreaterThanOrEqual(Math.min(...limited.map((r) => r.serverDelayMs!)) - 5);
  });

  it('backs off for the RetryInfo delay when rate limited, and still delivers everything once', async () => {
    const { connectionId } = await createFixture(env.pg, 'rate-limited-recorder');
    const { userId, token } = await provisionPrincipal(env.pg, { username: 'rate-limited-writer', roles: ['service'] });
    await env.pg.query(
      `INSERT INTO rate_limits (scope, user_id, endpoint, requests_limit, window_seconds) VALUES ('USER_ENDPOINT', $1, $2, 3, 1)`,
      [userId, '/mcp.connectionlog.v1.ConnectionLogService/RecordEvents'],
    );
    await new Promise((r) => setTimeout(r, 300)); // the NOTIFY that refreshes the limits
    const retries: Array<{ code: grpc.status; delayMs: number; serverDelayMs?: number }> = [];
    const recorder = new ConnectionEventRecorder(env.client({ apiKey: token }), { maxBatchSize: 10, onRetry: (r) => retries.push(r) });
    for (let i = 0; i < 80; i++) await recorder.record({ connectionId, eventType: connectionlog.EventType.EVENT_TYPE_USAGE_RECORDED, eventDetails: `call ${i}` });
    const stats = await recorder.close();
    expect(stats).toMatchObject({ recorded: 80, delivered: 80, rejected: 0, batches: 8 });
    expect(retries.length).toBeGreaterThan(0);
    for (const r of retries) {
      expect(r.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(r.serverDelayMs).toBeGreaterThan(0);
      expect(r.delayMs).toBeGreaterThanOrEqual(r.serverDelayMs!);
    }
    expect(await env.count(connectionId)).toEqual({ rows: 80, distinctIds: 80, duplicatedIds: 0 });
  });

  describe('DEADLINE_EXCEEDED', () => {
    let server: grpc.Server;
    let address: string;
    const calls = { runRetention: 0, listRuns: 0 };

    beforeAll(async () => {
      // A retention service that is too slow for the client's deadline: which calls may be repeated?
      server = new grpc.Server();
      const slow = <Req, Res>(name: keyof typeof calls, res: Res): grpc.handleUnaryCall<Req, Res> => (_call, callback) => {
        calls[name] += 1;
        setTimeout(() => callback(null, res), 300);
      };
      server.addService(retention.RetentionServiceService, {
        runRetention: slow('runRetention', retention.RunRetentionResponse.fromPartial({})),
        listRuns: slow('listRuns', retention.ListRunsResponse.fromPartial({})),
      } as unknown as retention.RetentionServiceServer);
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      address = `127.0.0.1:${port}`;
    });
    afterAll(() => server?.forceShutdown());

    it('is retried for idempotent methods (reads) only', async () => {
      const client = createRetentionClient({ address, credentials: 'insecure', apiKey: null, deadlineMs: 100, retry: { maxAttempts: 3, initialBackoffMs: 10 } });
      try {
        expect(((await client.listRuns({}).catch((e) => e)) as grpc.ServiceError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
        expect(((await client.runRetention({ policy: 'all' }).catch((e) => e)) as grpc.ServiceError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
        await new Promise((r) => setTimeout(r, 50));
        expect(calls).toEqual({ listRuns: 3, runRetention: 1 });
        // A longer deadline for one call.
        await expect(client.listRuns({}, { deadlineMs: 2_000 })).resolves.toBeDefined();
      } finally {
        client.close();
      }
    });
  });
});

describe('retryDecision', () => {
  it('retries UNKNOWN (the service lost its database while committing) only for idempotent methods', () => {
    const unknown = Object.assign(new Error('lost'), { code: grpc.status.UNKNOWN, details: 'lost', metadata: new grpc.Metadata() });
    expect(retryDecision(unknown, true, DEFAULT_RETRY_POLICY, 0).retry).toBe(true);
    expect(retryDecision(unknown, false, DEFAULT_RETRY_POLICY, 0).retry).toBe(false);
  });
});
