import * as grpc from '@grpc/grpc-js';
import { connectionlog } from '@mcp/proto';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionEventRecorder, RecorderClosedError, type RecorderError } from '../src';
import { createFixture, eventually, sleep, startConnectionLogEnv, TcpProxy, type ConnectionLogEnv } from './harness';

const { EventType } = connectionlog;
let env: ConnectionLogEnv;

beforeAll(async () => {
  env = await startConnectionLogEnv({ viaDatabaseProxy: true });
});
afterAll(async () => env?.close());

const usage = (connectionId: string, i: number) => ({
  connectionId,
  eventType: EventType.EVENT_TYPE_USAGE_RECORDED,
  eventDetails: `call ${i}`,
  latencyMs: i % 500,
  requestData: JSON.stringify({ method: 'tools/call', params: { name: 'search', i } }),
});

describe('ConnectionEventRecorder', () => {
  it('delivers every event exactly once across a database restart mid-stream', async () => {
    const { connectionId } = await createFixture(env.pg, 'db-restart');
    const client = env.client({ retry: { maxBackoffMs: 300 } });
    const errors: RecorderError[] = [];
    const recorder = new ConnectionEventRecorder(client, {
      maxBatchSize: 50,
      scheduledDelayMs: 20,
      maxQueueSize: 100_000,
      exportTimeoutMs: 3_000,
      retry: { initialBackoffMs: 50, maxBackoffMs: 300 },
      onError: (e) => errors.push(e),
    });
    const total = 3_000;
    let recordedDuringOutage = 0;
    let outage: Promise<void> | undefined;
    for (let i = 0; i < total; i++) {
      await recorder.record(usage(connectionId, i));
      if (i % 30 === 29) await sleep(5);
      if (i === 1_000) {
        // The database goes away for 1.5 s while the recorder keeps sending and recording.
        outage = (async () => {
          await env.dbProxy!.cut();
          await sleep(1_500);
          await env.dbProxy!.restore();
        })();
      }
      if (outage && i > 1_000 && i < 2_000) recordedDuringOutage++;
      if (i % 100 === 0) {
        // Every event accepted is accounted for at all times.
        const s = recorder.stats;
        expect(s.delivered + s.rejected + s.abandoned + s.queued + s.inFlight).toBe(s.recorded);
      }
    }
    await outage;
    const stats = await recorder.close({ timeoutMs: 60_000 });

    expect(errors).toEqual([]);
    expect(stats.recorded).toBe(total);
    expect(stats.delivered).toBe(total);
    expect(stats.dropped + stats.rejected + stats.abandoned).toBe(0);
    expect(stats.retries).toBeGreaterThan(0); // the outage was felt
    expect(recordedDuringOutage).toBeGreaterThan(0);
    // Acknowledged == stored, each id once.
    expect(await env.count(connectionId)).toEqual({ rows: total, distinctIds: total, duplicatedIds: 0 });
    const { rows } = await env.pg.query(`SELECT count(DISTINCT event_details)::int AS n FROM agent_mcp_connection_logs WHERE connection_id = $1`, [connectionId]);
    expect(rows[0].n).toBe(total);
  });

  it('stores a batch once when its acknowledgement is lost and it is sent again', async () => {
    const { connectionId } = await createFixture(env.pg, 'lost-ack');
    // Between client and service: a proxy that, for a while, lets requests through but loses the answers.
    const [host, port] = env.address.split(':');
    const grpcProxy = await TcpProxy.start(host, Number(port));
    const client = env.client({ address: grpcProxy.address });
    const recorder = new ConnectionEventRecorder(client, {
      maxBatchSize: 100,
      scheduledDelayMs: 60_000,
      exportTimeoutMs: 700,
      retry: { initialBackoffMs: 50, maxBackoffMs: 200 },
    });
    try {
      await client.listEvents({ pageSize: 1 }); // connection established
      grpcProxy.swallowResponses = true;
      for (let i = 0; i < 100; i++) await recorder.record(usage(connectionId, i));
      // The batch reaches the service and commits; its answer never arrives.
      await eventually(async () => (await env.count(connectionId)).rows === 100, 10_000, 'the first attempt to commit');
      await eventually(() => recorder.stats.retries >= 1, 10_000, 'a re-send');
      grpcProxy.swallowResponses = false;
      grpcProxy.dropConnections();
      await recorder.flush();
      const stats = recorder.stats;
      expect(stats.delivered).toBe(100);
      expect(stats.duplicates).toBe(100); // the service recognised every id
      expect(await env.count(connectionId)).toEqual({ rows: 100, distinctIds: 100, duplicatedIds: 0 });
    } finally {
      await recorder.close();
      await grpcProxy.close();
    }
  });

  it('close() delivers everything still buffered, then refuses new records', async () => {
    const { connectionId } = await createFixture(env.pg, 'close');
    const recorder = new ConnectionEventRecorder(env.client(), { maxBatchSize: 400, scheduledDelayMs: 60_000 });
    for (let i = 0; i < 1_234; i++) void recorder.record(usage(connectionId, i));
    // Three full batches went out on size; 34 events wait for a timer a minute away.
    const stats = await recorder.close();
    expect(stats).toMatchObject({ recorded: 1_234, delivered: 1_234, queued: 0, inFlight: 0, dropped: 0, rejected: 0, abandoned: 0 });
    expect(await env.count(connectionId)).toEqual({ rows: 1_234, distinctIds: 1_234, duplicatedIds: 0 });
    await expect(recorder.record(usage(connectionId, 0))).rejects.toBeInstanceOf(RecorderClosedError);
  });

  it('close() on SIGTERM keeps the process alive until everything is delivered, even while the database is down', async () => {
    const { connectionId } = await createFixture(env.pg, 'sigterm');
    await env.dbProxy!.cut();
    const child = spawn(process.execPath, [path.join(__dirname, 'fixtures/shutdown-agent.js')], {
      env: { ...process.env, MCP_CONNECTION_LOG_ADDRESS: env.address, MCP_API_KEY: env.writerToken, CONNECTION_ID: connectionId, EVENTS: '700' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    try {
      await eventually(() => stdout.includes('ready'), 15_000, 'the agent to record');
      child.kill('SIGTERM');
      await sleep(1_500); // close() is retrying against a service without its database
      expect(child.exitCode).toBeNull();
      await env.dbProxy!.restore();
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
      await env.dbProxy!.restore().catch(() => undefined);
    }
    const stats = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(stats).toMatchObject({ recorded: 700, delivered: 700, abandoned: 0 });
    expect(stats.retries).toBeGreaterThan(0);
    expect(await env.count(connectionId)).toEqual({ rows: 700, distinctIds: 700, duplicatedIds: 0 });
  });

  it("flushes on the interval, without flush() or a full batch", async () => {
    const { connectionId } = await createFixture(env.pg, 'interval');
    const recorder = new ConnectionEventRecorder(env.client(), { maxBatchSize: 1_000, scheduledDelayMs: 100 });
    await recorder.record(usage(connectionId, 1));
    await recorder.record(usage(connectionId, 2));
    await eventually(async () => (await env.count(connectionId)).rows === 2, 5_000, 'the timer flush');
    expect(recorder.stats).toMatchObject({ delivered: 2, batches: 1 });
    await recorder.close();
  });

  it("with onFull 'drop', a full buffer drops and counts exactly what it drops", async () => {
    const { connectionId } = await createFixture(env.pg, 'drop');
    const recorder = new ConnectionEventRecorder(env.client(), { maxQueueSize: 100, maxBatchSize: 50, scheduledDelayMs: 60_000, onFull: 'drop' });
    const results = await Promise.all(Array.from({ length: 1_000 }, (_, i) => recorder.record(usage(connectionId, i))));
    const accepted = results.filter(Boolean).length;
    await recorder.flush();
    const stats = await recorder.close();
    expect(stats.dropped).toBeGreaterThan(0);
    expect(stats.dropped).toBe(1_000 - accepted);
    expect(recorder.droppedCount).toBe(stats.dropped);
    expect(stats.recorded).toBe(accepted);
    expect(stats.delivered).toBe(accepted);
    expect(await env.count(connectionId)).toEqual({ rows: accepted, distinctIds: accepted, duplicatedIds: 0 });
  });

  it("with onFull 'block', a full buffer makes record() wait and loses nothing", async () => {
    const { connectionId } = await createFixture(env.pg, 'block');
    const recorder = new ConnectionEventRecorder(env.client(), { maxQueueSize: 100, maxBatchSize: 50, scheduledDelayMs: 60_000, onFull: 'block' });
    let settled = 0;
    const pending = Array.from({ length: 1_000 }, (_, i) => recorder.record(usage(connectionId, i)).then((ok) => (settled++, ok)));
    await Promise.resolve();
    // One batch in flight, 100 buffered, the rest waiting for space.
    expect(recorder.stats.queued).toBe(950);
    expect(settled).toBeLessThanOrEqual(150);
    expect((await Promise.all(pending)).every(Boolean)).toBe(true);
    const stats = await recorder.close();
    expect(stats).toMatchObject({ recorded: 1_000, delivered: 1_000, dropped: 0 });
    expect(await env.count(connectionId)).toEqual({ rows: 1_000, distinctIds: 1_000, duplicatedIds: 0 });
  });

  it('isolates invalid events by the field violations, delivers the rest, and never retries the refusal', async () => {
    const { connectionId } = await createFixture(env.pg, 'invalid');
    const errors: RecorderError[] = [];
    const recorder = new ConnectionEventRecorder(env.client(), { maxBatchSize: 100, scheduledDelayMs: 60_000, onError: (e) => errors.push(e) });
    for (let i = 0; i < 10; i++) {
      await recorder.record(i === 3 || i === 7 ? { ...usage(connectionId, i), latencyMs: -1 } : usage(connectionId, i));
    }
    const stats = await recorder.close();
    expect(stats).toMatchObject({ recorded: 10, delivered: 8, rejected: 2, retries: 0, batches: 1 });
    expect(errors).toHaveLength(1);
    expect((errors[0].cause as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((errors[0].items as connectionlog.ConnectionEvent[]).map((e) => e.eventDetails)).toEqual(['call 3', 'call 7']);
    expect((await env.count(connectionId)).rows).toBe(8);
  });

  it('isolates an event the service refuses without naming it (unknown connection) by splitting the batch', async () => {
    const { connectionId } = await createFixture(env.pg, 'bisect');
    const errors: RecorderError[] = [];
    const recorder = new ConnectionEventRecorder(env.client(), { maxBatchSize: 16, scheduledDelayMs: 60_000, onError: (e) => errors.push(e) });
    const unknown = crypto.randomUUID();
    for (let i = 0; i < 16; i++) await recorder.record(usage(i === 5 ? unknown : connectionId, i));
    const stats = await recorder.close();
    expect(stats).toMatchObject({ recorded: 16, delivered: 15, rejected: 1, retries: 0 });
    expect(errors.map((e) => (e.items as connectionlog.ConnectionEvent[]).map((x) => x.connectionId))).toEqual([[unknown]]);
    expect((errors[0].cause as grpc.ServiceError).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect((await env.count(connectionId)).rows).toBe(15);
  });
});
