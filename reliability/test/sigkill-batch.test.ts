/**
 * A service process killed with SIGKILL mid-batch: concurrent writers keep
 * large batches in flight, and each service is killed the moment one of its
 * database sessions is inside a transaction. Every batch sent — acknowledged
 * or not — is either wholly stored or wholly absent; every acknowledged batch
 * is stored, once.
 */
import * as grpc from '@grpc/grpc-js';
import { eventTime, uuidv7 } from '@mcp/client';
import { connectionlog } from '@mcp/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BatchLoops,
  RssSampler,
  STORED_KEYS,
  Scenario,
  auditEventBatches,
  connectionEventBatches,
  createConnections,
  createServers,
  eventually,
  heartbeatBatches,
  recordResult,
  securityEventBatches,
  statusReportBatches,
  storedCounts,
  type CallFactory,
  type SentCall,
  type ServiceName,
  type StoredKey,
} from '../src';

let scenario: Scenario;

beforeAll(async () => {
  scenario = await Scenario.open('sigkill');
  await scenario.start(['connection-log', 'status-sync', 'audit']);
});
afterAll(async () => scenario?.close());

/**
 * StreamEvents: one stream, each request a batch, acknowledged in order.
 * Sends the next batch as soon as the previous one is acknowledged, until
 * the stream breaks.
 */
class EventStreamWriter {
  readonly calls: SentCall[] = [];
  readonly done: Promise<void>;

  constructor(address: string, token: string, connectionIds: string[], size: number) {
    const client = new connectionlog.ConnectionLogServiceClient(address, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    const stream = client.streamEvents(metadata);
    const send = () => {
      const events = Array.from({ length: size }, (_, i) => ({
        id: uuidv7(),
        timestamp: eventTime(),
        connectionId: connectionIds[i % connectionIds.length],
        eventType: connectionlog.EventType.EVENT_TYPE_USAGE_RECORDED,
      }));
      this.calls.push({ keys: events.map((e) => e.id), startedAt: Date.now() });
      stream.write(connectionlog.StreamEventsRequest.fromPartial({ sequence: String(this.calls.length), events }));
    };
    this.done = new Promise((resolve) => {
      stream.on('data', (res: connectionlog.StreamEventsResponse) => {
        const call = this.calls[Number(res.sequence) - 1];
        call.outcome = 'acknowledged';
        call.endedAt = Date.now();
        send();
      });
      stream.on('error', (err: grpc.ServiceError) => {
        for (const c of this.calls) c.outcome ??= err.code;
        client.close();
        resolve();
      });
      stream.on('end', () => resolve());
    });
    send();
  }
}

/** One kind of batch, sent by concurrent writers: every call it made, and when all of them have ended. */
interface Writer {
  label: string;
  service: ServiceName;
  key: StoredKey;
  /** Items per batch. */
  size: number;
  calls(): SentCall[];
  done(): Promise<void>;
}

/** Whether a session of `application` is inside a transaction right now. */
async function inTransaction(application: string): Promise<boolean> {
  const { rows } = await scenario.pool.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL AND state <> 'idle'`,
    [application],
  );
  return rows[0].n > 0;
}

async function sessionsOf(application: string): Promise<number> {
  const { rows } = await scenario.pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`, [application]);
  return rows[0].n;
}

describe('SIGKILL mid-batch', () => {
  it('leaves every batch wholly stored or wholly absent', async () => {
    const { pool } = scenario;
    const connectionIds = (await createConnections(pool, 'sigkill', 10)).map((c) => c.connectionId);
    // Each writer its own servers: a batch updates its servers' rows, so writers sharing them would queue on their locks.
    const reportServers = (await createServers(pool, 'sigkill-reports', 4 * 25)).serverIds;
    const beatServers = (await createServers(pool, 'sigkill-beats', 4 * 25)).serverIds;
    const connectionLog = scenario.connectionLogClient();
    const stream = new EventStreamWriter(scenario.service('connection-log').address, scenario.principals.writer.token, connectionIds, 500);
    /** Four concurrent loops of one kind of batch. */
    const loops = (label: string, service: ServiceName, key: StoredKey, size: number, factory: (loop: number) => CallFactory): Writer => {
      const l = new BatchLoops(key, Array.from({ length: 4 }, (_, i) => factory(i)));
      return { label, service, key, size, calls: () => l.calls, done: () => l.finished() };
    };
    const writers: Writer[] = [
      loops('connection events (RecordEvents × 1000)', 'connection-log', STORED_KEYS.connectionEvents, 1000, () =>
        connectionEventBatches(connectionLog, connectionIds, 1000),
      ),
      {
        label: 'connection events (StreamEvents × 500)',
        service: 'connection-log',
        key: STORED_KEYS.connectionEvents,
        size: 500,
        calls: () => stream.calls,
        done: () => stream.done,
      },
      loops('status reports (ReportStatusBatch × 25)', 'status-sync', STORED_KEYS.statusReports, 25, (i) =>
        statusReportBatches(scenario.statusSyncClient(), reportServers.slice(i * 25, i * 25 + 25)),
      ),
      loops('heartbeats (HeartbeatBatch × 25)', 'status-sync', STORED_KEYS.heartbeats, 25, (i) =>
        heartbeatBatches(scenario.statusSyncClient(), beatServers.slice(i * 25, i * 25 + 25)),
      ),
      loops('audit events (RecordAuditEvents × 500)', 'audit', STORED_KEYS.auditEvents, 500, () => auditEventBatches(scenario.auditClient(), 500)),
      loops('security events (RecordSecurityEvents × 500)', 'audit', STORED_KEYS.securityEvents, 500, () =>
        securityEventBatches(scenario.auditClient(), 500),
      ),
    ];

    const sampler = new RssSampler(() => scenario.services.map((s) => ({ name: s.name, pid: s.pid }))).start();
    const acked = (w: Writer) => w.calls().filter((c) => c.outcome === 'acknowledged').length;
    await eventually(() => writers.every((w) => acked(w) >= 3), 90_000, 'every writer to have 3 batches acknowledged');
    const exits: Record<string, string> = {};
    for (const s of scenario.services) {
      // The moment one of its sessions is inside a transaction: the kill lands mid-batch.
      await eventually(() => inTransaction(s.name), 30_000, `${s.name} to be inside a transaction`);
      const exit = await s.kill();
      exits[s.name] = JSON.stringify(exit);
      expect(exit.signal).toBe('SIGKILL');
    }
    sampler.stop();
    await Promise.all(writers.map((w) => w.done()));
    // The killed processes' sessions end (their open transactions roll back) before anything is counted.
    await eventually(async () => (await Promise.all(scenario.services.map((s) => sessionsOf(s.name)))).every((n) => n === 0), 60_000, 'the killed sessions to end');

    const outcomes = [];
    for (const w of writers) {
      const calls = w.calls();
      const counts = await storedCounts(pool, w.key, calls.flatMap((c) => c.keys));
      // Per batch: how many of its keys are stored.
      const stored = calls.map((c) => c.keys.filter((k) => counts.has(k)).length);
      const partial = calls.filter((_, i) => stored[i] !== 0 && stored[i] !== w.size).length;
      const ackedCalls = calls.map((c, i) => ({ c, n: stored[i] })).filter((x) => x.c.outcome === 'acknowledged');
      const unacked = calls.map((c, i) => ({ c, n: stored[i] })).filter((x) => x.c.outcome !== 'acknowledged');
      const duplicated = [...counts.values()].filter((n) => n > 1).length;
      const lost = ackedCalls.reduce((n, x) => n + (w.size - x.n), 0);
      outcomes.push({ w, partial, lost, duplicated, unacked });
      recordResult({
        scenario: 'sigkill-batch',
        label: w.label,
        operations: calls.length * w.size,
        acknowledged: ackedCalls.length * w.size,
        stored: ackedCalls.reduce((n, x) => n + x.n, 0),
        lost,
        duplicated,
        peakRss: { [w.service]: sampler.peak()[w.service] },
        notes: [
          `${calls.length} batches: ${ackedCalls.length} acknowledged; ${unacked.length} unanswered at the kill, of which ${unacked.filter((x) => x.n === w.size).length} wholly stored (committed, answer lost) and ${unacked.filter((x) => x.n === 0).length} wholly absent; partly stored: ${partial}; ${w.service} exit ${exits[w.service]}`,
        ],
      });
    }
    for (const { w, partial, lost, duplicated, unacked } of outcomes) {
      expect(partial, `${w.label}: batches partly stored`).toBe(0);
      expect(lost, w.label).toBe(0);
      expect(duplicated, w.label).toBe(0);
      expect(unacked.length, `${w.label}: the kill caught batches in flight`).toBeGreaterThan(0);
    }
  });
});
