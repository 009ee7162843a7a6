import { sqlState, type CallContext } from '@mcp/runtime';
import type { DataSource, QueryRunner } from 'typeorm';

/** Longest a DDL statement of a run waits for a lock on a live table before giving way and retrying. */
export const LOCK_TIMEOUT_MS = 500;
const LOCK_ATTEMPTS = 6;

/** Best first: on heap pages of connection logs, zstd's full-page images are 20% smaller than lz4's or pglz's. */
const WAL_COMPRESSION_METHODS = ['zstd', 'lz4', 'pglz'];

/**
 * The wal_compression a run's transactions use. Nearly all the WAL a run
 * writes is full-page images of the pages its row deletes touch first after a
 * checkpoint; compressed, they shrink 3.6x (pglz, lz4) to 4.6x (zstd). Only
 * where the server does not compress already and this role may set it
 * (superuser, or GRANT SET ON PARAMETER wal_compression): null otherwise.
 */
export async function walCompressionFor(q: QueryRunner): Promise<string | null> {
  const [row] = await q.query(
    `SELECT setting = 'off' AND has_parameter_privilege('wal_compression', 'SET') AS settable, enumvals AS methods
       FROM pg_settings WHERE name = 'wal_compression'`,
  );
  if (!row?.settable) return null;
  return WAL_COMPRESSION_METHODS.find((method) => row.methods.includes(method)) ?? null;
}

async function connectedRunner(ds: DataSource): Promise<QueryRunner> {
  const q = ds.createQueryRunner();
  await q.connect();
  return q;
}

/**
 * One dedicated connection for a whole run: it holds the run's session-level
 * advisory lock, and every step is its own short transaction on it, so each
 * step commits (with its counts) or leaves no trace. `fork` opens another
 * connection with the same deadline for work that runs beside it.
 */
export class RunSession {
  private constructor(
    private readonly dataSource: DataSource,
    readonly q: QueryRunner,
    private readonly ctx: Pick<CallContext, 'signal' | 'remainingMs'>,
    private readonly walCompression: string | null,
  ) {}

  static async open(ds: DataSource, ctx: Pick<CallContext, 'signal' | 'remainingMs'>): Promise<RunSession> {
    const q = await connectedRunner(ds);
    try {
      return new RunSession(ds, q, ctx, await walCompressionFor(q));
    } catch (err) {
      await q.release();
      throw err;
    }
  }

  /** Connections opened ahead by reserve(), taken by fork() first. */
  private readonly spares: Array<Promise<QueryRunner>> = [];

  /**
   * Starts opening `n` connections for later fork() calls, so the run does
   * not wait for them when it needs them (a new PostgreSQL backend takes tens
   * of milliseconds to start: on a run's critical path, before its first drop).
   */
  reserve(n: number): void {
    for (let i = 0; i < n; i++) {
      const connected = connectedRunner(this.dataSource);
      connected.catch(() => undefined); // reported by the fork() that takes it
      this.spares.push(connected);
    }
  }

  async fork(): Promise<RunSession> {
    const q = await (this.spares.shift() ?? connectedRunner(this.dataSource));
    return new RunSession(this.dataSource, q, this.ctx, this.walCompression);
  }

  /** Stops the run between steps once the call is cancelled or its deadline passes. */
  throwIfAborted(): void {
    this.ctx.signal.throwIfAborted();
  }

  /**
   * One transaction on the run's connection, its statements capped at the
   * call's remaining time. `final`: the run's closing bookkeeping, written
   * even after the call was cancelled or ran out of time, and committed durably.
   */
  async tx<T>(
    work: (q: QueryRunner) => Promise<T>,
    options: { isolation?: 'REPEATABLE READ'; final?: boolean; lockTimeoutMs?: number } = {},
  ): Promise<T> {
    if (!options.final) this.throwIfAborted();
    await this.q.startTransaction(options.isolation);
    try {
      const settings: Array<[string, string]> = [];
      // Steps commit without waiting for the disk: a crash can lose only the last steps, whose
      // counts roll back with their changes, and the next run redoes them. The closing
      // bookkeeping commits durably, which also flushes every step before it.
      if (!options.final) settings.push(['synchronous_commit', 'off']);
      if (!options.final && this.walCompression) settings.push(['wal_compression', this.walCompression]);
      const remainingMs = options.final ? undefined : this.ctx.remainingMs();
      if (remainingMs !== undefined) settings.push(['statement_timeout', String(Math.max(1, Math.ceil(remainingMs)))]);
      if (options.lockTimeoutMs !== undefined) settings.push(['lock_timeout', `${options.lockTimeoutMs}ms`]);
      if (settings.length > 0) {
        // One round trip for all of them: a run has many short transactions.
        await this.q.query(`SELECT ${settings.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(', ')}`, settings.flat());
      }
      const result = await work(this.q);
      await this.q.commitTransaction();
      return result;
    } catch (err) {
      if (this.q.isTransactionActive) await this.q.rollbackTransaction().catch(() => undefined);
      throw err;
    }
  }

  /**
   * A transaction whose statements wait at most LOCK_TIMEOUT_MS for a lock:
   * DDL on a partitioned table needs a strong lock on its parent, and waiting
   * behind a long query would stall every reader queued behind it. On a lock
   * timeout it gives way and tries again a little later.
   */
  async ddlTx<T>(work: (q: QueryRunner) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.tx(work, { lockTimeoutMs: LOCK_TIMEOUT_MS });
      } catch (err) {
        if (sqlState(err) !== '55P03' || attempt >= LOCK_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, attempt * 200));
      }
    }
  }

  /** Releases the run's connection and any reserved one no fork() took. */
  async release(): Promise<void> {
    const unused = this.spares.splice(0);
    await Promise.all(unused.map((spare) => spare.then((q) => q.release(), () => undefined)));
    await this.q.release();
  }
}
