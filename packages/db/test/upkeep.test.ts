import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { monitoringReport, runMaintenance } from '../src';
import { freshDatabase, type TestDatabase } from '../src/testing';

let db: TestDatabase;
let pg: Client;

beforeAll(async () => {
  db = await freshDatabase();
  pg = new Client({ connectionString: db.url });
  await pg.connect();
  await pg.query(
    `INSERT INTO audit_logs (action_type, description, created_at)
     SELECT 'tool.call', 'call ' || g, now() - make_interval(hours => g % 48) FROM generate_series(1, 200) g`,
  );
  await pg.query('DELETE FROM audit_logs WHERE description LIKE $1', ['call 1%']);
});

/** Cumulative statistics reach pg_stat_* asynchronously (PostgreSQL 15 flushes them about once a second). */
async function reportWhen(check: (r: Awaited<ReturnType<typeof monitoringReport>>) => boolean) {
  const until = Date.now() + 5_000;
  for (;;) {
    await pg.query('SELECT pg_stat_clear_snapshot()');
    const report = await monitoringReport(pg);
    if (check(report) || Date.now() > until) return report;
    await new Promise((r) => setTimeout(r, 200));
  }
}
const auditBloat = (r: Awaited<ReturnType<typeof monitoringReport>>) => r.tableBloat.filter((t) => t.table.startsWith('audit_logs_'));
afterAll(async () => {
  await pg?.end();
  await db?.drop();
});

describe('seed 004 monitoring and maintenance', () => {
  it('reports index hit ratio, unused indexes, bloat, audit-log growth and statements slower than 100 ms', async () => {
    const sleeper = new Client({ connectionString: db.url });
    await sleeper.connect();
    const sleeping = sleeper.query('SELECT pg_sleep(0.6)');
    await new Promise((r) => setTimeout(r, 250));
    const report = await monitoringReport(pg);
    await sleeping;
    await sleeper.end();

    expect(report.indexHitRatio).toBeGreaterThanOrEqual(0);
    expect(report.indexHitRatio).toBeLessThanOrEqual(1);
    expect(report.unusedIndexes.length).toBeGreaterThan(0);
    const { rows } = await pg.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE created_at >= now() - interval '24 hours')::int AS recent FROM audit_logs`);
    expect(report.auditLogs.rows).toBe(rows[0].n);
    expect(report.auditLogs.rowsLast24h).toBe(rows[0].recent);
    expect(report.auditLogs.bytes).toBeGreaterThan(0);
    const withDeadTuples = await reportWhen((r) => auditBloat(r).length > 0);
    expect(auditBloat(withDeadTuples).reduce((n, t) => n + t.dead, 0)).toBe(111); // 'call 1', 'call 10'..'call 19', 'call 100'..'call 199'
    expect(report.slowQueries.map((q) => q.query)).toContain('SELECT pg_sleep(0.6)');
    expect(report.slowQueries[0].runningForMs).toBeGreaterThan(100);
  });

  it('VACUUM ANALYZE clears the dead tuples, and the seed’s index is rebuilt concurrently', async () => {
    const steps = await runMaintenance(pg);
    expect(steps.map((s) => s.statement)).toEqual([
      'VACUUM (ANALYZE) audit_logs',
      'VACUUM (ANALYZE) agent_mcp_connection_logs',
      'VACUUM (ANALYZE) mcp_server_status_logs',
      'VACUUM (ANALYZE) security_events',
      'REINDEX INDEX CONCURRENTLY idx_audit_logs_created_action',
    ]);
    expect(auditBloat(await reportWhen((r) => auditBloat(r).length === 0))).toEqual([]);
  });
});
