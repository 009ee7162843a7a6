/**
 * Database restart during sustained ingest, on every write path: connection
 * events, status reports, heartbeats, audit events, each fed at a fixed rate
 * through the client library's recorders (client-assigned keys, re-sends of
 * the same batch). PostgreSQL is stopped twice — fast, then immediate (a
 * crash, recovered on start) — and started again on the same port. After:
 * every acknowledged key is stored exactly once, and each service's health
 * went NOT_SERVING and back to SERVING for each restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HealthTimeline,
  RssSampler,
  Scenario,
  SteadyProducer,
  auditEventsPath,
  connectionEventsPath,
  createConnections,
  createServers,
  eventually,
  heartbeatsPath,
  reconcile,
  recordResult,
  statusReportsPath,
  type StopMode,
  type WritePath,
} from '../src';

let scenario: Scenario;

beforeAll(async () => {
  scenario = await Scenario.open('db-restart');
  await scenario.start(['connection-log', 'status-sync', 'audit']);
});
afterAll(async () => scenario?.close());

/**
 * Items per second offered on each path: well within what each service
 * sustains on a busy 2-core machine, so the outages are what is measured.
 * Heartbeats are one call each (every one is a transition), one call at a time.
 */
const RATES: Record<WritePath['name'], number> = { 'connection events': 400, 'status reports': 100, heartbeats: 20, 'audit events': 200 };

describe('database restart during sustained ingest', () => {
  it('stores every acknowledged write exactly once, and health goes NOT_SERVING and back, across a fast and an immediate restart', async () => {
    const { pool } = scenario;
    const connections = await createConnections(pool, 'restart', 10);
    const reportServers = await createServers(pool, 'restart-reports', 20);
    const heartbeatServers = await createServers(pool, 'restart-heartbeats', 20);
    const paths = [
      connectionEventsPath(
        scenario.connectionLogClient(),
        connections.map((c) => c.connectionId),
      ),
      statusReportsPath(scenario.statusSyncClient(), reportServers.serverIds),
      heartbeatsPath(scenario.statusSyncClient(), heartbeatServers.serverIds),
      auditEventsPath(scenario.auditClient(), reportServers.serverIds),
    ];
    const timelines = scenario.services.map((s) => new HealthTimeline(s.address));
    const sampler = new RssSampler(() => scenario.services.map((s) => ({ name: s.name, pid: s.pid }))).start();
    const producers = paths.map((p) => new SteadyProducer(p, RATES[p.name]));
    const outages: string[] = [];
    try {
      await eventually(() => paths.every((p) => p.stats.delivered > 0), 30_000, 'every path to deliver a first batch');
      for (const mode of ['fast', 'immediate'] as StopMode[]) {
        const stoppedAt = Date.now();
        await scenario.cluster.stop(mode);
        // Down until every service has noticed (its readiness probe runs every 2 s), while the producers keep recording.
        await Promise.all(timelines.map((t) => t.waitFor('NOT_SERVING', 30_000)));
        const startedAt = Date.now();
        await scenario.cluster.start();
        await Promise.all(timelines.map((t) => t.waitFor('SERVING', 60_000)));
        // Everything recorded while the database was down is delivered after it came back.
        const recordedAtStart = paths.map((p) => p.stats.recorded);
        await eventually(() => paths.every((p, i) => p.stats.delivered >= recordedAtStart[i]), 120_000, 'the backlog of the outage to be delivered');
        outages.push(
          `stop -m ${mode}: database down ${((startedAt - stoppedAt) / 1000).toFixed(1)} s; all SERVING again and the backlog delivered ${((Date.now() - startedAt) / 1000).toFixed(1)} s after it started`,
        );
      }
    } finally {
      await Promise.all(producers.map((p) => p.stop()));
    }
    const closed = await Promise.all(paths.map((p) => p.close()));
    sampler.stop();
    await Promise.all(timelines.map((t) => t.stop()));

    const counts = [];
    for (const [i, path] of paths.entries()) {
      const count = await reconcile(pool, path.key, path.acknowledged());
      counts.push(count);
      const service = scenario.service(path.service);
      recordResult({
        scenario: 'db-restart',
        label: path.name,
        operations: path.recorded.length,
        acknowledged: count.acknowledged,
        stored: count.stored,
        lost: count.lost,
        duplicated: count.duplicated,
        peakRss: { [path.service]: sampler.peak()[path.service] },
        notes: [
          `${closed[i].retries} re-sends, ${closed[i].duplicates} items acknowledged as already stored, ${closed[i].rejected} rejected, ${closed[i].abandoned} abandoned; ${path.service} health ${timelines[scenario.services.indexOf(service)].sequence.join(' → ')}`,
          ...(i === 0 ? outages : []),
        ],
      });
    }

    for (const [i, path] of paths.entries()) {
      expect(path.failures.map((f) => f.message), path.name).toEqual([]);
      expect(closed[i].delivered, path.name).toBe(path.recorded.length);
      expect(closed[i].retries, `${path.name}: the outages were felt`).toBeGreaterThan(0);
      expect(counts[i], path.name).toMatchObject({ acknowledged: path.recorded.length, stored: path.recorded.length, lost: 0, duplicated: 0 });
    }
    for (const [i, s] of scenario.services.entries()) {
      expect(s.running, `${s.name} exited: ${s.stderrTail()}`).toBe(true);
      expect(timelines[i].recoveries, `${s.name}: ${timelines[i].sequence.join(' → ')}`).toBeGreaterThanOrEqual(2);
    }
  });
});
