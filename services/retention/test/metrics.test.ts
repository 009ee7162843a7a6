import { metrics } from '@opentelemetry/api';
import { captureMetrics } from '@mcp/runtime/dist/testing';
import { retention } from '@mcp/proto';
import { Client } from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { count, createFixture, insertStatusLogs, startHarness, utcDay, type Harness } from './harness';

// Before the service exists: platformMetrics creates its instruments on first use.
const reader = captureMetrics();

const { HoldSubjectType, RunStatus } = retention;
const LIVE = 'mcp_server_status_logs';
const ARCHIVE = 'mcp_server_status_logs_archive';
const HOUR_MS = 3_600_000;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ batchSize: 1000 });
});
afterAll(async () => {
  await h?.close();
  metrics.disable();
});

const at = (days: number, hours: number): Date => new Date(utcDay(days).getTime() + hours * HOUR_MS);

it('counts what real runs deleted, archived and dropped with partitions, and nothing for a dry run', async () => {
  const free = await createFixture(h.pg, 'metrics-free');
  const held = await createFixture(h.pg, 'metrics-held');
  await h.call('upsertPolicy', { policy: { table: LIVE, hotDays: 30, archiveBeforeDelete: false, archiveDays: 5, enabled: true } });
  for (const d of [40, 41]) {
    await h.pg.query('SELECT ensure_partition($1, $2)', [LIVE, utcDay(d)]);
    await insertStatusLogs(h.pg, free.serverId, at(d, 1), at(d, 3), 100);
  }
  await insertStatusLogs(h.pg, held.serverId, at(40, 1), at(40, 3), 30); // kept by the hold: archived
  await insertStatusLogs(h.pg, free.serverId, at(60, 1), at(60, 3), 70); // in the default partition: deleted row by row
  await h.call('placeLegalHold', { subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_SERVER, subjectId: held.serverId, reason: 'metrics test' });

  await h.call('runRetention', { policy: LIVE, dryRun: true });
  expect(await reader.counter('mcp.retention.rows')).toEqual([]);

  const { run } = await h.call('runRetention', { policy: LIVE });
  expect(run!.status).toBe(RunStatus.RUN_STATUS_SUCCEEDED);
  expect(await count(h.pg, ARCHIVE)).toBe(30);
  const first = await reader.counter('mcp.retention.rows');
  expect(first).toHaveLength(3);
  expect(first).toEqual(
    expect.arrayContaining([
      { attributes: { table: LIVE, action: 'dropped_partition_rows' }, value: 200 },
      { attributes: { table: LIVE, action: 'deleted' }, value: 70 },
      { attributes: { table: LIVE, action: 'archived' }, value: 30 },
    ]),
  );

  // Released, the held rows expire from the archive (past its 5 days).
  const { holds } = await h.call('listLegalHolds', {});
  await h.call('releaseLegalHold', { id: holds[0].id, reason: 'done' });
  await h.call('runRetention', { policy: LIVE });
  expect(await count(h.pg, ARCHIVE)).toBe(0);
  const expired = (await reader.counter('mcp.retention.rows')).filter((p) => p.attributes.table === ARCHIVE);
  expect(expired).toEqual([{ attributes: { table: ARCHIVE, action: 'deleted' }, value: 30 }]);
});

type Gauges = Map<string, Array<{ attributes: Record<string, unknown>; value: number }>>;

/** Every `mcp.db.*` gauge from one collection (each collection runs seed 004's monitoring queries once). */
async function databaseGauges(): Promise<Gauges> {
  const { resourceMetrics } = await reader.collect();
  const gauges = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).filter((m) => m.descriptor.name.startsWith('mcp.db.'));
  return new Map(gauges.map((m) => [m.descriptor.name, m.dataPoints.map((p) => ({ attributes: p.attributes, value: p.value as number }))]));
}
const single = (gauges: Gauges, name: string): number => {
  const points = gauges.get(name) ?? [];
  expect(points, name).toHaveLength(1);
  return points[0].value;
};
const auditDeadTuples = (gauges: Gauges): number =>
  (gauges.get('mcp.db.dead_tuples') ?? []).filter((p) => String(p.attributes.table).startsWith('audit_logs_')).reduce((n, p) => n + p.value, 0);

it('exports seed 004’s monitoring figures as mcp.db.* gauges, read afresh at each collection', async () => {
  const before = await databaseGauges();
  const auditRowsBefore = single(before, 'mcp.db.audit_logs.rows');
  expect(auditRowsBefore).toBe(await count(h.pg, 'audit_logs')); // the runs above were audited

  // 50 audit rows written, 20 of them deleted: the gauge follows the table, and the deleted rows wait for VACUUM.
  await h.pg.query(`INSERT INTO audit_logs (action_type, description) SELECT 'metrics.gauge', 'row ' || g FROM generate_series(1, 50) g`);
  await h.pg.query(`DELETE FROM audit_logs WHERE action_type = 'metrics.gauge' AND description IN (SELECT 'row ' || g FROM generate_series(1, 20) g)`);
  // Otherwise this backend may hold its table statistics for up to 10 s before reporting them.
  await h.pg.query('SELECT pg_stat_force_next_flush()');
  const sleeper = new Client({ connectionString: h.db.url });
  await sleeper.connect();
  const sleeping = sleeper.query('SELECT pg_sleep(0.6)');
  await new Promise((r) => setTimeout(r, 250));
  const during = await databaseGauges();
  await sleeping;
  await sleeper.end();

  expect(single(during, 'mcp.db.audit_logs.rows')).toBe(auditRowsBefore + 30);
  expect(single(during, 'mcp.db.audit_logs.bytes')).toBeGreaterThan(0);
  expect(single(during, 'mcp.db.slow_queries')).toBe(1); // the pg_sleep, past seed 004's 100 ms
  const hitRatio = single(during, 'mcp.db.index_hit_ratio');
  expect(hitRatio).toBeGreaterThanOrEqual(0);
  expect(hitRatio).toBeLessThanOrEqual(1);
  const { rows } = await h.pg.query('SELECT count(*)::int AS n FROM pg_stat_user_indexes');
  expect(single(during, 'mcp.db.unused_indexes')).toBeGreaterThan(0);
  expect(single(during, 'mcp.db.unused_indexes')).toBeLessThanOrEqual(rows[0].n);

  // Even flushed, the statistics reach pg_stat_user_tables asynchronously: wait for the 20 dead tuples to show.
  let after = await databaseGauges();
  const until = Date.now() + 15_000;
  while (auditDeadTuples(after) < 20 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 250));
    after = await databaseGauges();
  }
  expect(auditDeadTuples(after)).toBe(20);
  expect([...after.keys()].sort()).toEqual([
    'mcp.db.audit_logs.bytes',
    'mcp.db.audit_logs.rows',
    'mcp.db.dead_tuples',
    'mcp.db.index_hit_ratio',
    'mcp.db.slow_queries',
    'mcp.db.unused_indexes',
  ]);
  expect(single(after, 'mcp.db.slow_queries')).toBe(0); // the sleep is over
});
