/**
 * Sustained load for a fixed period (RELIABILITY_DURATION_S, default 180 s;
 * RELIABILITY_SOAK=1: 30 minutes): every write path at a fixed rate through
 * the recorders, a live tail and a status watch reading, retention dry runs
 * planning over the growing tables. Throughput stays steady, each service's
 * memory stays bounded, file descriptors and database connections come back
 * to where they were, and every acknowledged write is stored exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RssSampler,
  Scenario,
  SteadyProducer,
  auditEventsPath,
  connectionEventsPath,
  createConnections,
  createServers,
  databaseConnections,
  heartbeatsPath,
  mb,
  openFds,
  reconcile,
  recordResult,
  statusReportsPath,
  sustainedLoadSeconds,
  type WritePath,
} from '../src';

const DURATION_S = sustainedLoadSeconds();
const WARM_UP_S = 10;
/** Throughput is compared window by window: at least 6 windows, at least 10 s each. */
const WINDOW_S = Math.max(10, Math.floor(DURATION_S / 6));
const RATES: Record<WritePath['name'], number> = { 'connection events': 1000, 'status reports': 100, heartbeats: 20, 'audit events': 200 };
/** Each service's pool size (its main.ts): the most database connections it may hold, besides its one LISTEN connection. */
const POOL_SIZES: Record<string, number> = { 'connection-log': 12, 'status-sync': 12, audit: 12, retention: 4 };

let scenario: Scenario;

beforeAll(async () => {
  scenario = await Scenario.open('sustained');
  await scenario.start(['connection-log', 'status-sync', 'audit', 'retention']);
});
afterAll(async () => scenario?.close());

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);

describe('sustained load', () => {
  it(`holds throughput, memory, descriptors and connections steady for ${DURATION_S} s and stores every acknowledged write once`, async () => {
    const { pool } = scenario;
    const connections = (await createConnections(pool, 'load', 20)).map((c) => c.connectionId);
    const reportServers = (await createServers(pool, 'load-reports', 50)).serverIds;
    const beatServers = (await createServers(pool, 'load-beats', 20)).serverIds;
    const admin = scenario.principals.admin.token;
    const stop = new AbortController();
    const tail = scenario.connectionLogClient(admin).tail({ connectionIds: connections }, { signal: stop.signal });
    const watch = scenario.statusSyncClient(admin).watch({}, { signal: stop.signal });
    const seen = { tail: 0, watch: 0 };
    const readers = [
      (async () => {
        for await (const _ of tail) seen.tail++;
      })(),
      (async () => {
        for await (const _ of watch) seen.watch++;
      })(),
    ];
    const retention = scenario.retentionClient();
    let dryRuns = 0;
    const dryRunFailures: string[] = [];
    const planning = (async () => {
      while (!stop.signal.aborted) {
        await retention.runRetention({ policy: 'all', dryRun: true }, { deadlineMs: 60_000 }).then(
          () => dryRuns++,
          (err: Error) => dryRunFailures.push(err.message),
        );
        await new Promise((r) => setTimeout(r, 2_000));
      }
    })();

    const paths = [
      connectionEventsPath(scenario.connectionLogClient(), connections),
      statusReportsPath(scenario.statusSyncClient(), reportServers),
      heartbeatsPath(scenario.statusSyncClient(), beatServers),
      auditEventsPath(scenario.auditClient(), reportServers),
    ];
    const sampler = new RssSampler(() => scenario.services.map((s) => ({ name: s.name, pid: s.pid })), 1_000).start();
    const producers = paths.map((p) => new SteadyProducer(p, RATES[p.name]));
    const windows: number[][] = paths.map(() => []);
    const peakFds: Record<string, number> = {};
    const fds = () => Object.fromEntries(scenario.services.map((s) => [s.name, openFds(s.pid) ?? -1]));
    let before: { fds: Record<string, number>; connections: Record<string, number> };
    let measuredFrom = 0;
    try {
      await new Promise((r) => setTimeout(r, WARM_UP_S * 1000));
      before = { fds: fds(), connections: await databaseConnections(pool, scenario.database.name) };
      measuredFrom = Date.now();
      let last = paths.map((p) => p.stats.delivered);
      for (let w = 0; w < Math.ceil(DURATION_S / WINDOW_S); w++) {
        await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
        const now = paths.map((p) => p.stats.delivered);
        now.forEach((n, i) => windows[i].push((n - last[i]) / WINDOW_S));
        last = now;
        for (const [name, n] of Object.entries(fds())) peakFds[name] = Math.max(peakFds[name] ?? 0, n);
      }
    } finally {
      await Promise.all(producers.map((p) => p.stop()));
    }
    const measuredS = (Date.now() - measuredFrom) / 1000;
    const closed = await Promise.all(paths.map((p) => p.close()));
    stop.abort();
    await Promise.all([...readers, planning]);
    sampler.stop();
    scenario.closeClients();
    // Connections the load opened may close once idle; what must not happen is growth.
    await new Promise((r) => setTimeout(r, 3_000));
    const after = { fds: fds(), connections: await databaseConnections(pool, scenario.database.name) };

    // Memory per service over the measured period, in thirds: the last may not keep growing past the middle one.
    const measured = sampler.samples.filter((s) => s.at >= measuredFrom);
    const third = Math.floor(measured.length / 3);
    const memory = scenario.services.map((s) => {
      const series = measured.map((m) => m.rss[s.name]).filter((v): v is number => v !== undefined);
      return { name: s.name, middle: mean(series.slice(third, 2 * third)), last: mean(series.slice(2 * third)), peak: sampler.peak()[s.name] };
    });
    const resources = [
      `memory (mean RSS, middle → last third of the run): ${memory.map((m) => `${m.name} ${mb(m.middle)} → ${mb(m.last)} MB`).join(', ')}`,
      `open file descriptors before → peak → after: ${scenario.services.map((s) => `${s.name} ${before.fds[s.name]} → ${peakFds[s.name]} → ${after.fds[s.name]}`).join(', ')}`,
      `database connections before → after: ${JSON.stringify(before.connections)} → ${JSON.stringify(after.connections)}`,
      `readers: the tail saw ${seen.tail} events, the watch ${seen.watch} rows; ${dryRuns} retention dry runs, ${dryRunFailures.length} failed`,
    ];

    const counts = [];
    for (const [i, path] of paths.entries()) {
      const count = await reconcile(pool, path.key, path.acknowledged());
      counts.push(count);
      const w = windows[i];
      recordResult({
        scenario: 'sustained-load',
        label: `${path.name} at ${RATES[path.name]}/s for ${DURATION_S} s`,
        operations: path.recorded.length,
        acknowledged: count.acknowledged,
        stored: count.stored,
        lost: count.lost,
        duplicated: count.duplicated,
        peakRss: { [path.service]: sampler.peak()[path.service] },
        notes: [
          `throughput per ${WINDOW_S} s window (items/s): min ${Math.min(...w).toFixed(0)}, median ${median(w).toFixed(0)}, max ${Math.max(...w).toFixed(0)}; ${closed[i].batches} calls, ${closed[i].retries} re-sends`,
          ...(i === 0 ? [...resources, `retention (idle but for dry runs) peak RSS ${mb(sampler.peak().retention)} MB`] : []),
        ],
      });
    }

    for (const [i, path] of paths.entries()) {
      const w = windows[i];
      expect(path.failures.map((f) => f.message), path.name).toEqual([]);
      expect(counts[i], path.name).toMatchObject({ acknowledged: path.recorded.length, lost: 0, duplicated: 0 });
      // Steady: no window falls below half the median, and the service kept up with the offered rate.
      expect(Math.min(...w), `${path.name}: windows ${w.map((x) => x.toFixed(0)).join(', ')}`).toBeGreaterThanOrEqual(median(w) / 2);
      expect(median(w), `${path.name}: median window vs offered ${RATES[path.name]}/s`).toBeGreaterThanOrEqual(RATES[path.name] * 0.8);
      expect(path.recorded.length, path.name).toBeGreaterThanOrEqual(RATES[path.name] * measuredS * 0.9);
    }
    expect(dryRunFailures, `retention dry runs under load: ${scenario.service('retention').stderrTail()}`).toEqual([]);
    for (const m of memory) {
      expect(m.last, `${m.name}: RSS grew from ${mb(m.middle)} to ${mb(m.last)} MB`).toBeLessThanOrEqual(m.middle * 1.5 + 64 * 1024 * 1024);
      expect(m.peak, `${m.name}: peak RSS`).toBeLessThan(1024 * 1024 * 1024);
    }
    for (const s of scenario.services) {
      expect(s.running, `${s.name}: ${s.stderrTail()}`).toBe(true);
      // No descriptor leak: besides its database connections (bounded below), no more than a few above the level under load.
      const nonDatabase = (x: typeof after) => x.fds[s.name] - (x.connections[s.name] ?? 0);
      expect(nonDatabase(after), `${s.name} fds ${before.fds[s.name]} → ${after.fds[s.name]}`).toBeLessThanOrEqual(nonDatabase(before) + 8);
    }
    // No connection leak: each pool within its size; the LISTEN connections (one per service, shared name) no more than before.
    for (const [app, n] of Object.entries(after.connections)) {
      expect(n, `${app} database connections`).toBeLessThanOrEqual(POOL_SIZES[app] ?? before.connections[app] ?? 0);
    }
  });
});
