import * as grpc from '@grpc/grpc-js';
import { freePort } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import { connectionlog } from '@mcp/proto';
import { provisionPrincipal, waitForServing } from '@mcp/runtime';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionEventRecorder, createConnectionLogClient, type ConnectionLogClient, type RetryEvent } from '../src';
import { createFixture, eventually, sleep, type Fixture } from './harness';

const { EventType } = connectionlog;
const SERVICE_MAIN = path.join(path.dirname(require.resolve('@mcp/connection-log/package.json')), 'dist/main.js');

let db: TestDatabase;
let pg: Client;
/** Tails read as an admin: a `service` key writes, but row-level security shows it only what it owns (nothing here). */
let readerToken: string;
let writerToken: string;
let a: Fixture;
let b: Fixture;

beforeAll(async () => {
  db = await freshDatabase();
  pg = new Client({ connectionString: db.url });
  await pg.connect();
  readerToken = (await provisionPrincipal(pg, { username: 'tail-reader', roles: ['admin'] })).token;
  writerToken = (await provisionPrincipal(pg, { username: 'tail-writer', roles: ['service'] })).token;
  a = await createFixture(pg, 'tail-a');
  b = await createFixture(pg, 'tail-b');
});
afterAll(async () => {
  await pg?.end();
  await db?.drop();
});

/** The service as its own process (dist/main.js), as deployed; SIGTERM drains it for 300 ms, then cancels what is left (the tails). */
function startService(port: number): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [SERVICE_MAIN], {
    env: { ...process.env, DATABASE_URL: db.url, GRPC_HOST: '127.0.0.1', GRPC_PORT: String(port), LOG_LEVEL: 'warn', SHUTDOWN_GRACE_MS: '300' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { child, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
}

const details = (events: connectionlog.ConnectionEvent[]) => events.map((e) => e.eventDetails);

/** Rows written by someone else (one transaction each), announced as the service's own writes are. */
async function insertDirectly(fx: Fixture, labels: string[]): Promise<void> {
  for (const label of labels) {
    await pg.query('BEGIN');
    await pg.query(`INSERT INTO agent_mcp_connection_logs (connection_id, event_type, event_details) VALUES ($1, 'testing', $2)`, [fx.connectionId, label]);
    await pg.query(`SELECT pg_notify('agent_mcp_connection_logs', pg_current_xact_id()::text)`);
    await pg.query('COMMIT');
  }
}

describe('tail()', () => {
  it('survives a service restart with no gap and no duplicate, and ends cleanly', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    let service = startService(port);
    await waitForServing(address, 30_000);
    const reconnects: RetryEvent[] = [];
    const client: ConnectionLogClient = createConnectionLogClient({
      address,
      apiKey: readerToken,
      credentials: 'insecure',
      retry: { initialBackoffMs: 50, maxBackoffMs: 400 },
      onRetry: (r) => reconnects.push(r),
    });
    const writer = createConnectionLogClient({ address, apiKey: writerToken, credentials: 'insecure' });
    const stop = new AbortController();
    const tailA = client.tail({ connectionIds: [a.connectionId] }, { signal: stop.signal });
    const tailB = client.tail({ connectionIds: [b.connectionId] }, { signal: stop.signal });
    const gotA: connectionlog.ConnectionEvent[] = [];
    const gotB: connectionlog.ConnectionEvent[] = [];
    const consumers = [
      (async () => {
        for await (const e of tailA) gotA.push(e);
      })(),
      (async () => {
        for await (const e of tailB) gotB.push(e);
      })(),
    ];
    const recorder = new ConnectionEventRecorder(writer, { maxBatchSize: 10, scheduledDelayMs: 20, retry: { initialBackoffMs: 50, maxBackoffMs: 400 } });
    const record = async (fx: Fixture, labels: string[]) => {
      for (const label of labels) await recorder.record({ connectionId: fx.connectionId, eventType: EventType.EVENT_TYPE_USAGE_RECORDED, eventDetails: label });
    };
    const labels = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    try {
      // Both tails have their opening cursor; only A sees events before the restart.
      await eventually(() => tailA.cursor !== '' && tailB.cursor !== '', 10_000, 'opening cursors');
      await record(a, labels('before', 20));
      await recorder.flush();
      await eventually(() => gotA.length === 20, 10_000, '20 events before the restart');
      expect(gotB).toEqual([]);

      service.child.kill('SIGTERM');
      expect(await service.exited).toBe(0);
      // While the service is down: rows committed by someone else, and events the recorder keeps retrying.
      await insertDirectly(a, labels('down-sql', 5));
      await insertDirectly(b, labels('down-sql-b', 3));
      await record(a, labels('down-recorded', 10));
      await sleep(500);

      service = startService(port);
      await waitForServing(address, 30_000);
      await recorder.flush();
      await record(a, labels('after', 20));
      await record(b, labels('after-b', 2));
      await recorder.flush();

      const expectedA = [...labels('before', 20), ...labels('down-sql', 5), ...labels('down-recorded', 10), ...labels('after', 20)];
      const expectedB = [...labels('down-sql-b', 3), ...labels('after-b', 2)];
      await eventually(() => gotA.length >= expectedA.length && gotB.length >= expectedB.length, 20_000, 'every event after the restart');
      await sleep(300); // nothing more may arrive
      expect(details(gotA)).toEqual(expectedA);
      expect(details(gotB)).toEqual(expectedB);
      expect(new Set(gotA.map((e) => e.id)).size).toBe(gotA.length);
      expect(tailA.reconnects).toBeGreaterThanOrEqual(1);
      expect(tailB.reconnects).toBeGreaterThanOrEqual(1);
      expect(reconnects.some((r) => r.method.endsWith('/TailEvents'))).toBe(true);

      // The AbortSignal ends both iterations cleanly (no error), even while they wait for a message.
      stop.abort();
      await Promise.all(consumers);
    } finally {
      stop.abort();
      await recorder.close().catch(() => undefined);
      client.close();
      writer.close();
      service.child.kill('SIGTERM');
      await service.exited;
    }
  });

  it('resumes from a saved cursor, ends on break, and throws (without retrying) on a bad cursor', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const service = startService(port);
    await waitForServing(address, 30_000);
    const retries: RetryEvent[] = [];
    const client = createConnectionLogClient({ address, apiKey: readerToken, credentials: 'insecure', onRetry: (r) => retries.push(r) });
    try {
      const first = client.tail({ connectionIds: [b.connectionId] });
      const seen: string[] = [];
      const consumer = (async () => {
        for await (const e of first) {
          seen.push(e.eventDetails!);
          if (seen.length === 3) break;
        }
      })();
      await eventually(() => first.cursor !== '', 10_000, 'opening cursor');
      await insertDirectly(b, ['r-0', 'r-1', 'r-2', 'r-3', 'r-4']);
      await consumer; // `break` ended it
      expect(seen).toEqual(['r-0', 'r-1', 'r-2']);

      const resumed = client.tail({ connectionIds: [b.connectionId] }, { cursor: first.cursor });
      const rest: string[] = [];
      for await (const e of resumed) {
        rest.push(e.eventDetails!);
        if (rest.length === 2) break;
      }
      expect(rest).toEqual(['r-3', 'r-4']);

      const bad = client.tail({}, { cursor: 'not-a-cursor' });
      const err = await (async () => {
        try {
          for await (const _ of bad) void _;
        } catch (e) {
          return e as grpc.ServiceError;
        }
      })();
      expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(retries).toEqual([]);
    } finally {
      client.close();
      service.child.kill('SIGTERM');
      await service.exited;
    }
  });
});
