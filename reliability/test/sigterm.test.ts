/**
 * SIGTERM under load: each ingest service is signalled while concurrent
 * writers keep calls in flight. In-flight calls finish (acknowledged after
 * the signal), new calls are refused with UNAVAILABLE and store nothing,
 * every acknowledged key is stored exactly once, and the process exits 0.
 */
import * as grpc from '@grpc/grpc-js';
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
  heartbeatCalls,
  reconcile,
  recordResult,
  statusReportBatches,
  type ServiceName,
} from '../src';

let scenario: Scenario;

beforeAll(async () => {
  scenario = await Scenario.open('sigterm');
  await scenario.start(['connection-log', 'status-sync', 'audit']);
});
afterAll(async () => scenario?.close());

const LOOPS = 6;

describe('SIGTERM under load', () => {
  it('finishes in-flight calls, refuses new ones with UNAVAILABLE, loses nothing acknowledged, and exits 0', async () => {
    const { pool } = scenario;
    const connectionIds = (await createConnections(pool, 'sigterm', 10)).map((c) => c.connectionId);
    // Each status writer its own servers: writers sharing them would queue on their rows' locks.
    const reportServers = (await createServers(pool, 'sigterm-reports', (LOOPS / 2) * 20)).serverIds;
    const beatServers = (await createServers(pool, 'sigterm-beats', (LOOPS / 2) * 4)).serverIds;
    const connectionLog = scenario.connectionLogClient();
    const statusSync = scenario.statusSyncClient();
    const audit = scenario.auditClient();
    const writers: Array<{ label: string; service: ServiceName; loops: BatchLoops }> = [
      {
        label: 'connection events (RecordEvents × 200)',
        service: 'connection-log',
        loops: new BatchLoops(STORED_KEYS.connectionEvents, Array.from({ length: LOOPS }, () => connectionEventBatches(connectionLog, connectionIds, 200))),
      },
      {
        label: 'status reports (ReportStatusBatch × 20)',
        service: 'status-sync',
        loops: new BatchLoops(STORED_KEYS.statusReports, Array.from({ length: LOOPS / 2 }, (_, i) => statusReportBatches(statusSync, reportServers.slice(i * 20, i * 20 + 20)))),
      },
      {
        label: 'heartbeats',
        service: 'status-sync',
        loops: new BatchLoops(
          STORED_KEYS.heartbeats,
          Array.from({ length: LOOPS / 2 }, (_, i) => heartbeatCalls(statusSync, beatServers.slice(i * 4, i * 4 + 4))),
        ),
      },
      {
        label: 'audit events (RecordAuditEvents × 100)',
        service: 'audit',
        loops: new BatchLoops(STORED_KEYS.auditEvents, Array.from({ length: LOOPS }, () => auditEventBatches(audit, 100))),
      },
    ];
    const sampler = new RssSampler(() => scenario.services.map((s) => ({ name: s.name, pid: s.pid }))).start();
    let signalledAt = 0;
    try {
      await eventually(() => writers.every((w) => w.loops.acknowledgedCalls.length >= 10), 60_000, 'every writer to have 10 calls acknowledged');
      signalledAt = Date.now();
      for (const s of scenario.services) s.signal('SIGTERM');
      const exits = await Promise.all(scenario.services.map(async (s) => ({ service: s, exit: await s.exited, afterMs: Date.now() - signalledAt })));
      // Every loop ends at its first refused call.
      await Promise.all(writers.map((w) => w.loops.finished()));
      sampler.stop();

      // After the exit: refused at once, not hung.
      const codeOf = (call: Promise<unknown>) =>
        call.then(
          () => 'accepted',
          (err: grpc.ServiceError) => grpc.status[err.code],
        );
      const late = {
        'connection-log': await codeOf(connectionEventBatches(connectionLog, connectionIds, 1)().call),
        'status-sync': await codeOf(statusReportBatches(statusSync, reportServers.slice(0, 1))().call),
        audit: await codeOf(auditEventBatches(audit, 1)().call),
      };

      const results = [];
      for (const w of writers) {
        const count = await reconcile(pool, w.loops.key, w.loops.acknowledged(), w.loops.unacknowledged());
        const drained = w.loops.acknowledgedCalls.filter((c) => c.endedAt! > signalledAt).length;
        const exit = exits.find((e) => e.service.name === w.service)!;
        results.push({ w, count, drained, exit });
        recordResult({
          scenario: 'sigterm',
          label: w.label,
          operations: w.loops.calls.reduce((n, c) => n + c.keys.length, 0),
          acknowledged: count.acknowledged,
          stored: count.stored,
          lost: count.lost,
          duplicated: count.duplicated,
          peakRss: { [w.service]: sampler.peak()[w.service] },
          notes: [
            `${w.loops.calls.length} calls: ${w.loops.acknowledgedCalls.length} acknowledged (${drained} of them answered after SIGTERM: the drain), refused ${JSON.stringify(w.loops.failureCodes())}; items of refused calls stored: ${count.storedUnacknowledged}; ${w.service} exited ${JSON.stringify(exit.exit)} ${exit.afterMs} ms after the signal`,
          ],
        });
      }

      for (const { w, count, drained, exit } of results) {
        expect(exit.exit, `${w.service}: ${exit.service.stderrTail()}`).toEqual({ code: 0, signal: null });
        expect(drained, `${w.label}: calls in flight at the signal finish`).toBeGreaterThan(0);
        expect(Object.keys(w.loops.failureCodes()), `${w.label}: refused cleanly`).toEqual(['UNAVAILABLE']);
        expect(count, w.label).toMatchObject({ lost: 0, duplicated: 0, storedUnacknowledged: 0 });
        expect(count.stored).toBe(w.loops.acknowledged().length);
      }
      expect(late).toEqual({ 'connection-log': 'UNAVAILABLE', 'status-sync': 'UNAVAILABLE', audit: 'UNAVAILABLE' });
    } finally {
      sampler.stop();
      await Promise.all(writers.map((w) => w.loops.stop()));
    }
  });
});
