import { UnavailableError } from './errors';
import type { DataSource, QueryRunner } from 'typeorm';
import type { Principal } from './auth/principal';
import type { CallContext } from './calls';

/** The role user-scoped reads run as; row-level security applies to it (see docs/schema.md). */
export const APPLICATION_ROLE = 'mcp_app';

export type IsolationLevel = 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE';

export interface TransactionOptions {
  /**
   * Read as this principal: unless it is an admin, the transaction runs as the
   * mcp_app role with auth.uid() = its user, so PostgreSQL's row-level security
   * decides what it sees, whatever the query says.
   */
  readAs?: Principal;
  /** Exposed to SQL (triggers, row-level security) as current_setting('app.current_user_id'). */
  actingUserId?: string;
  /** Default: the database default (READ COMMITTED). */
  isolation?: IsolationLevel;
}

/**
 * Runs `work` in one transaction: commits when it resolves, rolls back when
 * it throws, always releases the connection. With a call deadline, each
 * statement is capped (statement_timeout) at the time left when the
 * transaction starts, so a call whose client stopped waiting also stops its
 * database work; the database then reports 57014, which maps to
 * DEADLINE_EXCEEDED.
 */
export async function inTransaction<T>(
  ds: DataSource,
  ctx: Pick<CallContext, 'remainingMs' | 'signal'> | undefined,
  work: (q: QueryRunner) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  // A cancelled or expired call never touches the database.
  ctx?.signal.throwIfAborted();
  // Not yet connected (the service starts while the database is down): retryable.
  if (!ds.isInitialized) throw new UnavailableError('database not connected yet');
  const runner = ds.createQueryRunner();
  try {
    await runner.connect();
    await runner.startTransaction(options.isolation);
    try {
      // Every per-transaction setting in one round trip (set_config(..., true) is SET LOCAL).
      const settings: Array<[string, string]> = [];
      const remainingMs = ctx?.remainingMs();
      if (remainingMs !== undefined) {
        // statement_timeout 0 would mean "no limit": an already-expired deadline gets the smallest limit.
        settings.push(['statement_timeout', String(Math.max(1, Math.ceil(remainingMs)))]);
      }
      const actingUserId = options.readAs?.userId ?? options.actingUserId;
      if (actingUserId !== undefined) settings.push(['app.current_user_id', actingUserId]);
      if (options.readAs && !options.readAs.isAdmin) settings.push(['role', APPLICATION_ROLE]);
      if (settings.length > 0) {
        await runner.query(
          `SELECT ${settings.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(', ')}`,
          settings.flat(),
        );
      }
      const result = await work(runner);
      await runner.commitTransaction();
      return result;
    } catch (err) {
      // The original error explains the failure; a rollback error on a broken connection would only hide it.
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      throw err;
    }
  } finally {
    await runner.release();
  }
}

/**
 * Readiness: the database answers and every migration this build knows is
 * recorded as applied. A reachable but unmigrated database is not ready.
 */
export async function databaseReady(ds: DataSource): Promise<boolean> {
  if (!ds.isInitialized) return false;
  const table = ds.options.migrationsTableName ?? 'schema_migrations';
  try {
    const [{ present }] = (await ds.query('SELECT to_regclass($1) IS NOT NULL AS present', [table])) as Array<{
      present: boolean;
    }>;
    if (!present) return false;
    const rows = (await ds.query(`SELECT name FROM ${ds.driver.escape(table)}`)) as Array<{ name: string }>;
    const applied = new Set(rows.map((r) => r.name));
    // TypeORM records a migration under its `name`, else its class name.
    return ds.migrations.every((m) => applied.has(m.name ?? m.constructor.name));
  } catch {
    return false;
  }
}
