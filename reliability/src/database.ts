import { Pool } from 'pg';

/** A pool or a client. */
export type Queryable = Pick<Pool, 'query'>;

/**
 * The suite's own connections to a scenario's database. A pool, because
 * scenarios restart the database under it: connections the restart killed
 * are dropped (their error is expected, not fatal) and new ones are opened.
 */
export function openPool(url: string, max = 4): Pool {
  const pool = new Pool({ connectionString: url, max, connectionTimeoutMillis: 10_000 });
  pool.on('error', () => undefined);
  return pool;
}

/** Open server connections per application_name (how the services name themselves), e.g. { 'connection-log': 9 }. */
export async function databaseConnections(db: Queryable, database: string): Promise<Record<string, number>> {
  const { rows } = await db.query<{ app: string; n: number }>(
    `SELECT application_name AS app, count(*)::int AS n FROM pg_stat_activity
      WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend' GROUP BY 1`,
    [database],
  );
  return Object.fromEntries(rows.map((r) => [r.app, r.n]));
}
