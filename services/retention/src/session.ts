import type { CallContext } from '@mcp/runtime';
import type { DataSource, QueryRunner } from 'typeorm';

/** Longest a DDL statement of a run waits for a lock on a live table before giving way and retrying. */
export const LOCK_TIMEOUT_MS = 500;
const LOCK_ATTEMPTS = 6;

/** SQLSTATE of a pg error, also when TypeORM wraps it. */
export function sqlState(err: unknown): string | undefined {
  const e = err as { code?: unknown; driverError?: { code?: unknown } };
  const code = e?.driverError?.code ?? e?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * One dedicated connection for a whole run: it holds the run's session-level
 * advisory lock, and every step is its own short transaction on it, so each
 * step commits (with its counts) or leaves no trace.
 */
export class RunSession {
  private constructor(
    readonly q: QueryRunner,
    private readonly ctx: Pick<CallContext, 'signal' | 'remainingMs'>,
  ) {}

  static async open(ds: DataSource, ctx: Pick<CallContext, 'signal' | 'remainingMs'>): Promise<RunSession> {
    const q = ds.createQueryRunner();
    await q.connect();
    return new RunSession(q, ctx);
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
  async tx<T>(work: (q: QueryRunner) => Promise<T>, options: { isolation?: 'REPEATABLE READ'; final?: boolean } = {}): Promise<T> {
    if (!options.final) this.throwIfAborted();
    await this.q.startTransaction(options.isolation);
    try {
      // Steps commit without waiting for the disk: a crash can lose only the last steps, whose
      // counts roll back with their changes, and the next run redoes them. The closing
      // bookkeeping commits durably, which also flushes every step before it.
      if (!options.final) await this.q.query(`SELECT set_config('synchronous_commit', 'off', true)`);
      const remainingMs = options.final ? undefined : this.ctx.remainingMs();
      if (remainingMs !== undefined) {
        await this.q.query(`SELECT set_config('statement_timeout', $1, true)`, [String(Math.max(1, Math.ceil(remainingMs)))]);
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
        return await this.tx(async (q) => {
          await q.query(`SELECT set_config('lock_timeout', $1, true)`, [`${LOCK_TIMEOUT_MS}ms`]);
          return work(q);
        });
      } catch (err) {
        if (sqlState(err) !== '55P03' || attempt >= LOCK_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, attempt * 200));
      }
    }
  }

  async release(): Promise<void> {
    await this.q.release();
  }
}
