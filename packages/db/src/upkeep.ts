/** A pg Client or Pool, or anything answering queries the same way. */
export interface QueryableDb {
  query(sql: string, params?: unknown[]): Promise<{ rows: any[] }>;
}
type Db = QueryableDb;

/**
 * Seed 004's "Monitoring and Maintenance": the performance queries it
 * describes (index usage, index hit ratio, bloat, slow queries, audit-log
 * growth) and the weekly tasks of its "Best Practices". Read by
 * `mcp-db monitor`, exported as metrics by the retention service, and run by
 * `mcp-db maintain` from a CronJob.
 */
export const MONITORING_QUERIES = {
  /** Share of index block reads served from shared buffers; seed 004's target is above 95 %. */
  indexHitRatio: `
    SELECT coalesce(sum(idx_blks_hit)::float8 / nullif(sum(idx_blks_hit + idx_blks_read), 0), 1) AS ratio
      FROM pg_statio_user_indexes`,
  /** Scans per index: never-scanned indexes cost every write and serve no read. */
  indexUsage: `
    SELECT s.relname AS table, s.indexrelname AS index, s.idx_scan AS scans,
           pg_relation_size(s.indexrelid) AS bytes
      FROM pg_stat_user_indexes s
     ORDER BY s.idx_scan ASC, pg_relation_size(s.indexrelid) DESC`,
  /** Dead tuples left for VACUUM, per table: the bloat that grows until autovacuum or retention catches up. */
  tableBloat: `
    SELECT relname AS table, n_live_tup AS live, n_dead_tup AS dead,
           round(n_dead_tup::numeric / nullif(n_live_tup + n_dead_tup, 0), 4)::float8 AS dead_ratio,
           last_autovacuum, last_autoanalyze
      FROM pg_stat_user_tables
     ORDER BY n_dead_tup DESC`,
  /** Statements of this database running longer than 100 ms right now (seed 004's slow-query threshold). */
  slowQueries: `
    SELECT pid, now() - query_start AS running_for, state, left(query, 200) AS query
      FROM pg_stat_activity
     WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
       AND now() - query_start > interval '100 milliseconds'
     ORDER BY query_start`,
  /** audit_logs rows and bytes over all partitions, and rows written in the last 24 hours. */
  auditLogGrowth: `
    SELECT (SELECT count(*) FROM audit_logs) AS rows,
           (SELECT count(*) FROM audit_logs WHERE created_at >= now() - interval '24 hours') AS rows_last_24h,
           (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits
             WHERE inhparent = 'audit_logs'::regclass) AS bytes`,
} as const;

export interface MonitoringReport {
  indexHitRatio: number;
  unusedIndexes: Array<{ table: string; index: string; bytes: number }>;
  tableBloat: Array<{ table: string; live: number; dead: number; deadRatio: number }>;
  slowQueries: Array<{ pid: number; runningForMs: number; query: string }>;
  auditLogs: { rows: number; rowsLast24h: number; bytes: number };
}

export async function monitoringReport(db: Db): Promise<MonitoringReport> {
  // One after another: `db` may be a single connection.
  const hit = await db.query(MONITORING_QUERIES.indexHitRatio);
  const usage = await db.query(MONITORING_QUERIES.indexUsage);
  const bloat = await db.query(MONITORING_QUERIES.tableBloat);
  const slow = await db.query(
    `SELECT pid, (extract(epoch FROM running_for) * 1000)::float8 AS ms, query FROM (${MONITORING_QUERIES.slowQueries}) q`,
  );
  const audit = await db.query(MONITORING_QUERIES.auditLogGrowth);
  return {
    indexHitRatio: Number(hit.rows[0].ratio),
    unusedIndexes: usage.rows
      .filter((r) => Number(r.scans) === 0)
      .map((r) => ({ table: r.table, index: r.index, bytes: Number(r.bytes) })),
    tableBloat: bloat.rows
      .filter((r) => Number(r.dead) > 0)
      .map((r) => ({ table: r.table, live: Number(r.live), dead: Number(r.dead), deadRatio: Number(r.dead_ratio) })),
    slowQueries: slow.rows.map((r) => ({ pid: r.pid, runningForMs: Number(r.ms), query: r.query })),
    auditLogs: { rows: Number(audit.rows[0].rows), rowsLast24h: Number(audit.rows[0].rows_last_24h), bytes: Number(audit.rows[0].bytes) },
  };
}

/** Tables seed 004's weekly maintenance covers: the high-volume, time-partitioned ones. */
const MAINTAINED_TABLES = ['audit_logs', 'agent_mcp_connection_logs', 'mcp_server_status_logs', 'security_events'] as const;
/** Seed 004 reindexes this one by name; the others are rebuilt when their bloat warrants it. */
const REINDEXED_INDEXES = ['idx_audit_logs_created_action'] as const;

export interface MaintenanceStep {
  statement: string;
  ms: number;
}

/**
 * Seed 004's weekly tasks: VACUUM ANALYZE the high-volume tables and
 * REINDEX … CONCURRENTLY (no lock that blocks writes). Neither may run inside
 * a transaction block, so `db` must be a plain connection, not a transaction.
 */
export async function runMaintenance(db: Db): Promise<MaintenanceStep[]> {
  const steps: MaintenanceStep[] = [];
  const run = async (statement: string) => {
    const started = Date.now();
    await db.query(statement);
    steps.push({ statement, ms: Date.now() - started });
  };
  for (const table of MAINTAINED_TABLES) await run(`VACUUM (ANALYZE) ${table}`);
  for (const index of REINDEXED_INDEXES) await run(`REINDEX INDEX CONCURRENTLY ${index}`);
  return steps;
}
