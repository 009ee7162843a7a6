import {
  FailedPreconditionError,
  inTransaction,
  platformMetrics,
  recordAudit,
  uuidv7,
  type AuditEntry,
  type CallContext,
  type Redactor,
} from '@mcp/runtime';
import type { DataSource } from 'typeorm';
import type { StatusLogRow, StatusRepository } from './repository';
import { stateAndHealth, STATUS_LOG_TABLE, type NewStatusReport } from './status';

export interface RecordedReports {
  /** In request order. */
  rows: StatusLogRow[];
  alreadyRecorded: boolean;
}

export interface ReportCall {
  reports: NewStatusReport[];
  /** report_id or batch_id; a retry with the same key records nothing. */
  idempotencyKey: string | undefined;
  /** Names the key in errors: 'report_id' or 'batch_id'. */
  keyField: string;
  batchId: string | null;
  /** The error for reports naming servers that do not exist. */
  unknownServers(indexes: number[]): Error;
  audit(rows: StatusLogRow[]): AuditEntry;
}

/** Thrown inside the transaction when a concurrent call with the same key committed first. */
class KeyClaimedConcurrently extends Error {}

/**
 * Stores status reports: all of a call's reports in one transaction with its
 * audit row, so they are wholly stored or wholly absent, and idempotently
 * when the call carries a key.
 */
export class StatusReporter {
  constructor(
    private readonly dataSource: DataSource,
    private readonly repository: StatusRepository,
    private readonly redactor: Redactor,
  ) {}

  async record(call: ReportCall, ctx: CallContext): Promise<RecordedReports> {
    const now = Date.now();
    const keyed = call.reports.map((r) => ({ ...r, logId: uuidv7(now) }));
    try {
      const recorded = await inTransaction(this.dataSource, ctx, async (q) => {
        if (call.idempotencyKey) {
          const earlier = await this.repository.rowsUnderKey(q, call.idempotencyKey);
          if (earlier.length > 0) return { rows: this.replay(call, earlier), alreadyRecorded: true };
        }
        const known = await this.repository.existingServers(q, keyed.map((r) => r.serverId));
        const unknown = keyed.flatMap((r, i) => (known.has(r.serverId) ? [] : [i]));
        if (unknown.length > 0) throw call.unknownServers(unknown);
        const key = call.idempotencyKey ?? null;
        const recorded = await this.repository.recordReports(q, keyed, ctx.principal.userId, call.batchId, key);
        if (key && recorded.claimed < recorded.rows.length) throw new KeyClaimedConcurrently();
        const rows = inRequestOrder(call.reports, recorded.rows);
        await recordAudit(q, ctx, call.audit(rows), this.redactor);
        return { rows, alreadyRecorded: false };
      });
      if (!recorded.alreadyRecorded) countCommitted(recorded.rows);
      return recorded;
    } catch (err) {
      if (!(err instanceof KeyClaimedConcurrently)) throw err;
      // The concurrent call committed the same key: this one rolled back, and answers with what that one stored.
      const earlier = await inTransaction(this.dataSource, ctx, (q) => this.repository.rowsUnderKey(q, call.idempotencyKey!));
      return { rows: this.replay(call, earlier), alreadyRecorded: true };
    }
  }

  /** The rows stored under the key, provided it was used for exactly these servers. */
  private replay(call: ReportCall, earlier: StatusLogRow[]): StatusLogRow[] {
    const requested = new Set(call.reports.map((r) => r.serverId));
    if (earlier.length !== requested.size || earlier.some((row) => !requested.has(row.server_id))) {
      throw new FailedPreconditionError(`${call.keyField} ${call.idempotencyKey} was already used for a different set of servers`);
    }
    return inRequestOrder(call.reports, earlier);
  }
}

/** Metrics of committed report rows: each is stored; those whose state or health differs from their previous status are transitions. */
function countCommitted(rows: StatusLogRow[]): void {
  platformMetrics.rowsIngested(STATUS_LOG_TABLE, rows.length);
  for (const row of rows) {
    const before = stateAndHealth(row.previous_status);
    const after = stateAndHealth(row.current_status);
    if (before.state !== after.state || before.health !== after.health) {
      platformMetrics.heartbeatTransition({ source: row.source, health: after.health! });
    }
  }
}

/** At most one report per server (validated), so the server id maps each row back to its report. */
function inRequestOrder(reports: NewStatusReport[], rows: StatusLogRow[]): StatusLogRow[] {
  const byServer = new Map(rows.map((r) => [r.server_id, r]));
  return reports.map((r) => byServer.get(r.serverId)!);
}
