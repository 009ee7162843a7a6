import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Query, type PoolClient, type QueryConfig, type QueryResult } from 'pg';
import type { DataSource, QueryRunner } from 'typeorm';
import type { Principal } from './auth/principal';
import type { CallContext } from './calls';
import { classifyError, StatusError, UnavailableError } from './errors';

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

type CallDeadline = Pick<CallContext, 'remainingMs' | 'signal'>;

/**
 * The connection to PostgreSQL was lost while a transaction was committing:
 * it may or may not have committed. UNKNOWN rather than UNAVAILABLE, so a
 * client does not blindly re-run a call that may already have taken effect.
 */
export class CommitOutcomeUnknownError extends StatusError {
  readonly code = grpc.status.UNKNOWN;
  constructor() {
    super('the database connection was lost while committing: the call may or may not have taken effect');
  }
}

/**
 * The connection died under the statement (no answer from the server, as
 * opposed to an error the server reported). Connections already known to be
 * broken fail before anything is sent: those are plain UNAVAILABLE.
 */
function lostInFlight(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  // TypeORM wraps the driver's error as `driverError`.
  const driverError: unknown = (err as { driverError?: unknown }).driverError;
  const cause = driverError instanceof Error ? driverError : err;
  if (typeof (cause as { severity?: unknown }).severity === 'string') return false;
  if (/is not queryable/.test(cause.message)) return false;
  return classifyError(cause).code === grpc.status.UNAVAILABLE;
}

/** A cancelled or expired call never touches the database; one started before the database is up gets a retryable error. */
function checkCanStart(ds: DataSource, ctx: CallDeadline | undefined): void {
  ctx?.signal.throwIfAborted();
  if (!ds.isInitialized) throw new UnavailableError('database not connected yet');
}

/**
 * The per-transaction settings of a call, as one `SELECT set_config(..., true)`
 * (SET LOCAL) statement, or undefined when there are none.
 */
function transactionSettings(ctx: CallDeadline | undefined, options: Omit<TransactionOptions, 'isolation'>): { text: string; values: string[] } | undefined {
  const settings: Array<[string, string]> = [];
  const remainingMs = ctx?.remainingMs();
  if (remainingMs !== undefined) {
    // statement_timeout 0 would mean "no limit": an already-expired deadline gets the smallest limit.
    settings.push(['statement_timeout', String(Math.max(1, Math.ceil(remainingMs)))]);
  }
  const actingUserId = options.readAs?.userId ?? options.actingUserId;
  if (actingUserId !== undefined) settings.push(['app.current_user_id', actingUserId]);
  if (options.readAs && !options.readAs.isAdmin) settings.push(['role', APPLICATION_ROLE]);
  if (settings.length === 0) return undefined;
  return {
    text: `SELECT ${settings.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(', ')}`,
    values: settings.flat(),
  };
}

/**
 * Runs `work` in one transaction: commits when it resolves, rolls back when
 * it throws, always releases the connection. With a call deadline, each
 * statement is capped (statement_timeout) at the time left when the
 * transaction starts, so a call whose client stopped waiting also stops its
 * database work; the database then reports 57014, which maps to
 * DEADLINE_EXCEEDED. A connection lost during COMMIT is
 * CommitOutcomeUnknownError (UNKNOWN).
 */
export async function inTransaction<T>(
  ds: DataSource,
  ctx: CallDeadline | undefined,
  work: (q: QueryRunner) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  checkCanStart(ds, ctx);
  const runner = ds.createQueryRunner();
  try {
    await runner.connect();
    await runner.startTransaction(options.isolation);
    let result: T;
    try {
      // Every per-transaction setting in one round trip.
      const settings = transactionSettings(ctx, options);
      if (settings) await runner.query(settings.text, settings.values);
      result = await work(runner);
    } catch (err) {
      // The original error explains the failure; a rollback error on a broken connection would only hide it.
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      throw err;
    }
    try {
      await runner.commitTransaction();
    } catch (err) {
      if (lostInFlight(err)) throw new CommitOutcomeUnknownError();
      throw err;
    }
    return result;
  } finally {
    await runner.release();
  }
}

/**
 * The name runStatement prepares `text` under, once per pooled connection:
 * the same text always gets the same name, and parsing and planning are not
 * repeated on every call.
 */
function preparedName(text: string): string {
  return `mcp_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
}

/** What PipelinedStatement sends on node-postgres's connection (its Query uses the same). */
interface ProtocolConnection {
  parsedStatements: Record<string, string>;
  parse(m: { name: string; text: string }): void;
  bind(m: { statement: string; values: string[] }): void;
  describe(m: { type: 'P'; name: string }): void;
  execute(m: Record<string, never>): void;
}

/**
 * One statement sent together with the statement that applies the settings,
 * in one round trip: Parse (first time on a connection only)/Bind/Execute of
 * both, then one Sync. Until the Sync the extended protocol keeps both in one
 * implicit transaction, so the SET LOCALs apply to the statement
 * (statement_timeout is re-armed for every Execute, so it caps the statement
 * too) and the Sync commits.
 */
class PipelinedStatement extends Query {
  constructor(
    private readonly settings: { text: string; values: string[] },
    text: string,
    values: unknown[],
    callback: (err: Error | undefined, results: QueryResult | QueryResult[]) => void,
  ) {
    super({ name: preparedName(text), text, values } as QueryConfig, callback as never);
  }

  /** Called by Query.submit with the socket corked: everything below leaves in one write. */
  prepare(connection: ProtocolConnection): void {
    const name = preparedName(this.settings.text);
    if (connection.parsedStatements[name] === undefined) {
      connection.parse({ name, text: this.settings.text });
      // Parsed before anything after it in this pipeline can fail; a connection that dies is discarded with its statements.
      connection.parsedStatements[name] = this.settings.text;
    }
    connection.bind({ statement: name, values: this.settings.values });
    connection.describe({ type: 'P', name: '' });
    connection.execute({});
    (Query.prototype as unknown as { prepare(c: ProtocolConnection): void }).prepare.call(this, connection);
  }
}

/**
 * Runs one statement as a transaction of its own, with the same per-call
 * settings as inTransaction (deadline, acting user, row-level-security role),
 * in ONE round trip instead of four (BEGIN, settings, statement, COMMIT).
 * For the high-rate paths whose work is a single statement of fixed text
 * (each text is prepared once per pooled connection). The commit travels
 * with the statement, so a connection lost after sending it is
 * CommitOutcomeUnknownError (UNKNOWN).
 */
export async function runStatement<Row>(
  ds: DataSource,
  ctx: CallDeadline | undefined,
  text: string,
  values: unknown[],
  options: Omit<TransactionOptions, 'isolation'> = {},
): Promise<Row[]> {
  checkCanStart(ds, ctx);
  const settings = transactionSettings(ctx, options);
  const runner = ds.createQueryRunner();
  try {
    const client = (await runner.connect()) as PoolClient;
    try {
      if (!settings) return (await client.query({ name: preparedName(text), text, values })).rows as Row[];
      const results = await new Promise<QueryResult | QueryResult[]>((resolve, reject) =>
        client.query(new PipelinedStatement(settings, text, values, (err, res) => (err ? reject(err) : resolve(res)))),
      );
      return (Array.isArray(results) ? results[results.length - 1] : results).rows as Row[];
    } catch (err) {
      if (lostInFlight(err)) throw new CommitOutcomeUnknownError();
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
