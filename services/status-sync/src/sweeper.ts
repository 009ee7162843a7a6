import { inTransaction, platformMetrics, SYSTEM_USER_ID, type Logger } from '@mcp/runtime';
import type { DataSource } from 'typeorm';
import type { StatusLogRow, StatusRepository } from './repository';
import { stateAndHealth, STATUS_LOG_TABLE } from './status';

export interface SweeperOptions {
  /** Pause between sweeps; 0 disables the sweeper. */
  intervalMs: number;
  /** Servers marked per statement (a sweep repeats until fewer are found). */
  batchSize: number;
  /** Idempotency keys of status reports older than this are deleted. */
  reportKeyRetentionHours: number;
}

/**
 * Runs inside every replica: marks stale servers (StatusRepository.markStale
 * makes that once per episode however many replicas sweep at once) and
 * forgets expired report idempotency keys. Never throws: a sweep that fails
 * (database down) is logged and retried at the next tick.
 */
export class StaleSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly dataSource: DataSource,
    private readonly repository: StatusRepository,
    private readonly options: SweeperOptions,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.options.intervalMs <= 0 || !this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One sweep: every stale server found is marked, in statements of batchSize. Returns the rows written. */
  async sweepOnce(): Promise<StatusLogRow[]> {
    const marked: StatusLogRow[] = [];
    for (;;) {
      const rows = await inTransaction(this.dataSource, undefined, (q) =>
        this.repository.markStale(q, SYSTEM_USER_ID, this.options.batchSize),
      );
      // Each batch has committed: its rows are stored, each a transition to UNHEALTHY.
      platformMetrics.rowsIngested(STATUS_LOG_TABLE, rows.length);
      for (const row of rows) platformMetrics.heartbeatTransition({ source: row.source, health: stateAndHealth(row.current_status).health! });
      marked.push(...rows);
      if (rows.length < this.options.batchSize) break;
    }
    await inTransaction(this.dataSource, undefined, (q) => this.repository.purgeReportKeys(q, this.options.reportKeyRetentionHours));
    return marked;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.options.intervalMs);
  }

  private async tick(): Promise<void> {
    if (!this.dataSource.isInitialized) return;
    try {
      const marked = await this.sweepOnce();
      if (marked.length > 0) this.logger.info({ servers: marked.slice(0, 20).map((r) => r.server_id) }, `marked ${marked.length} stale server(s) unhealthy`);
    } catch (err) {
      this.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'stale sweep failed; retrying at the next tick');
    }
  }
}
