/**
 * A live tail (connection-log) and a status watch (status-sync) across server
 * restarts: writers keep writing through the recorders while both services
 * are restarted twice (SIGTERM, then SIGKILL) on the same port. The
 * resumable iterators reconnect from their cursor; each sees every
 * acknowledged write exactly once.
 */
import type { statussync } from '@mcp/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RssSampler,
  Scenario,
  SteadyProducer,
  connectionEventsPath,
  createConnections,
  createServers,
  eventually,
  heartbeatsPath,
  reconcile,
  recordResult,
  statusReportsPath,
  type WritePath,
} from '../src';

let scenario: Scenario;

beforeAll(async () => {
  scenario = await Scenario.open('stream-resume');
  // A short grace: on SIGTERM the open tails are cancelled after 1 s instead of holding the shutdown for 10.
  await scenario.start(['connection-log', 'status-sync'], { env: { SHUTDOWN_GRACE_MS: '1000' } });
});
afterAll(async () => scenario?.close());

/** How many times each key was seen. */
function tally(keys: Iterable<string>): Map<string, number> {
  const seen = new Map<string, number>();
  for (const k of keys) seen.set(k, (seen.get(k) ?? 0) + 1);
  return seen;
}

describe('live tail and status watch across server restarts', () => {
  it('resume from their cursor and see every acknowledged write exactly once', async () => {
    const { pool } = scenario;
    const connections = (await createConnections(pool, 'resume', 5)).map((c) => c.connectionId);
    const reportServers = (await createServers(pool, 'resume-reports', 10)).serverIds;
    const beatServers = (await createServers(pool, 'resume-beats', 10)).serverIds;
    const readerOptions = { retry: { initialBackoffMs: 50, maxBackoffMs: 500 } };
    const stop = new AbortController();
    const tail = scenario.connectionLogClient(scenario.principals.admin.token, readerOptions).tail({ connectionIds: connections }, { signal: stop.signal });
    const watch = scenario.statusSyncClient(scenario.principals.admin.token, readerOptions).watch({}, { signal: stop.signal });
    const tailed: string[] = [];
    const watched: statussync.StatusLogEntry[] = [];
    const readers = [
      (async () => {
        for await (const e of tail) tailed.push(e.id);
      })(),
      (async () => {
        for await (const e of watch) watched.push(e);
      })(),
    ];
    await eventually(() => tail.cursor !== '' && watch.cursor !== '', 20_000, 'the opening cursors');

    const paths: WritePath[] = [
      connectionEventsPath(scenario.connectionLogClient(), connections),
      statusReportsPath(scenario.statusSyncClient(), reportServers),
      heartbeatsPath(scenario.statusSyncClient(), beatServers),
    ];
    const rates = [200, 50, 10];
    const producers = paths.map((p, i) => new SteadyProducer(p, rates[i]));
    const sampler = new RssSampler(() => scenario.services.map((s) => ({ name: s.name, pid: s.pid }))).start();
    const restarts: string[] = [];
    try {
      for (const how of ['SIGTERM', 'SIGKILL'] as const) {
        const seenBefore = [tailed.length, watched.length];
        await eventually(() => tailed.length > seenBefore[0] + 100 && watched.length > seenBefore[1] + 50, 60_000, 'events flowing to the readers');
        const exits = await Promise.all((['connection-log', 'status-sync'] as const).map((name) => scenario.restart(name, how)));
        restarts.push(`${how}: ${exits.map((e) => `${e.service.name} exited ${JSON.stringify(e.exit)}`).join(', ')}`);
      }
      const seenBefore = [tailed.length, watched.length];
      await eventually(() => tailed.length > seenBefore[0] + 100 && watched.length > seenBefore[1] + 50, 60_000, 'events flowing after the last restart');
    } finally {
      await Promise.all(producers.map((p) => p.stop()));
    }
    const closed = await Promise.all(paths.map((p) => p.close()));
    const [events, reports, beats] = paths.map((p) => p.acknowledged());
    const reportKeys = () => watched.filter((e) => e.details && !e.heartbeatData).map((e) => e.details!);
    const beatKeys = () => watched.filter((e) => e.heartbeatData).map((e) => (JSON.parse(e.heartbeatData!) as { rel: string }).rel);
    await eventually(
      () => tailed.length >= events.length && reportKeys().length >= reports.length && beatKeys().length >= beats.length,
      60_000,
      'every acknowledged write to reach the readers',
    );
    // Anything more (a duplicate) would arrive right behind.
    await new Promise((r) => setTimeout(r, 500));
    stop.abort();
    sampler.stop();

    const streams = [
      { label: 'tail: connection events', path: paths[0], seen: tally(tailed), reconnects: tail.reconnects, service: 'connection-log' },
      { label: 'watch: status reports', path: paths[1], seen: tally(reportKeys()), reconnects: watch.reconnects, service: 'status-sync' },
      { label: 'watch: heartbeats', path: paths[2], seen: tally(beatKeys()), reconnects: watch.reconnects, service: 'status-sync' },
    ];
    const outcomes = [];
    for (const [i, s] of streams.entries()) {
      const acked = s.path.acknowledged();
      const ackedSet = new Set(acked);
      const missed = acked.filter((k) => !s.seen.has(k)).length;
      const repeated = [...s.seen.values()].filter((n) => n > 1).length;
      const unexpected = [...s.seen.keys()].filter((k) => !ackedSet.has(k)).length;
      const stored = await reconcile(pool, s.path.key, acked);
      outcomes.push({ s, missed, repeated, unexpected, stored, acked });
      recordResult({
        scenario: 'stream-resume',
        label: s.label,
        operations: s.path.recorded.length,
        acknowledged: acked.length,
        stored: acked.length - missed,
        lost: missed,
        duplicated: repeated,
        peakRss: { [s.service]: sampler.peak()[s.service] },
        notes: [
          `seen by the reader: ${acked.length - missed} of ${acked.length} acknowledged, ${repeated} more than once, ${unexpected} never acknowledged; ${s.reconnects} reconnects; writer re-sends ${closed[i].retries} (${closed[i].duplicates} items already stored); in the database: lost ${stored.lost}, duplicated ${stored.duplicated}`,
          ...(i === 0 ? restarts : []),
        ],
      });
    }
    await Promise.all(readers);

    for (const { s, missed, repeated, unexpected, stored, acked } of outcomes) {
      expect(s.path.failures.map((f) => f.message), s.label).toEqual([]);
      expect(acked.length, s.label).toBe(s.path.recorded.length);
      expect({ missed, repeated, unexpected }, s.label).toEqual({ missed: 0, repeated: 0, unexpected: 0 });
      expect(stored, s.label).toMatchObject({ lost: 0, duplicated: 0 });
      expect(s.reconnects, `${s.label}: resumed after each restart`).toBeGreaterThanOrEqual(2);
    }
  });
});
