import type { connectionlog } from '@mcp/proto';
import { trace } from '@opentelemetry/api';
import { FailedPreconditionError, inTransaction, platformMetrics, sqlState, uuidv7, type CallContext, type Redactor } from '@mcp/runtime';
import type { DataSource, QueryRunner } from 'typeorm';
import type { IngestLimits } from '@mcp/runtime';
import { parseEventBatch } from './events';
import type { ConnectionLogRepository, InsertedEvents, KeyedEvent } from './repository';

const UNIQUE_VIOLATION = '23505';

export interface RecordResult {
  acks: connectionlog.EventAck[];
  storedCount: number;
  duplicateCount: number;
}

/**
 * Stores batches of connection events: validated and redacted up front, then
 * one transaction per batch, so a batch is wholly stored or wholly absent and
 * an acknowledgement is only ever sent for committed rows.
 */
export class EventRecorder {
  constructor(
    private readonly dataSource: DataSource,
    private readonly repository: ConnectionLogRepository,
    private readonly limits: IngestLimits,
    private readonly redactor: Redactor,
  ) {}

  async record(events: connectionlog.ConnectionEvent[], ctx: CallContext): Promise<RecordResult> {
    const now = new Date();
    const parsed = parseEventBatch(events, this.limits, this.redactor, now);
    // Server-assigned keys are fixed before the transaction, so the ack names
    // exactly what was stored. Millisecond timestamps round-trip through the API.
    const keyed: KeyedEvent[] = parsed.map((e) => ({
      ...e,
      id: e.id ?? uuidv7(now.getTime()),
      timestamp: e.timestamp ?? now,
    }));

    const inserted = await this.store(keyed, ctx);
    trace.getActiveSpan()?.setAttributes({ 'mcp.batch.size': keyed.length, 'mcp.batch.stored': inserted.count });
    platformMetrics.rowsIngested('agent_mcp_connection_logs', inserted.count);

    const acks = keyed.map((e) => ({
      id: e.id,
      timestamp: e.timestamp,
      alreadyStored: !inserted.includes(e),
    }));
    return { acks, storedCount: inserted.count, duplicateCount: keyed.length - inserted.count };
  }

  /**
   * COPY first (repository.copyNewEvents); a batch holding an event that is
   * already stored (a retry) fails that with a unique violation and is redone
   * with the INSERT that skips stored events and says which they were.
   */
  private async store(events: KeyedEvent[], ctx: CallContext): Promise<InsertedEvents> {
    const attempt = (insert: (q: QueryRunner, events: KeyedEvent[]) => Promise<InsertedEvents>) =>
      inTransaction(this.dataSource, ctx, async (q) => {
        await this.checkReferences(q, events);
        return insert(q, events);
      });
    try {
      return await attempt((q, e) => this.repository.copyNewEvents(q, e));
    } catch (err) {
      if (sqlState(err) !== UNIQUE_VIOLATION) throw err;
      return attempt((q, e) => this.repository.insertEvents(q, e));
    }
  }

  /** Names every event whose connection or creator does not exist, instead of one opaque FK error. */
  private async checkReferences(q: Parameters<ConnectionLogRepository['existingConnections']>[0], events: KeyedEvent[]): Promise<void> {
    const connectionIds = [...new Set(events.map((e) => e.connectionId))];
    const userIds = [...new Set(events.flatMap((e) => (e.createdBy ? [e.createdBy] : [])))];
    const [connections, users] = await Promise.all([
      this.repository.existingConnections(q, connectionIds),
      userIds.length > 0 ? this.repository.existingUsers(q, userIds) : Promise.resolve(new Set<string>()),
    ]);
    const problems: string[] = [];
    events.forEach((e, i) => {
      if (!connections.has(e.connectionId)) problems.push(`events[${i}].connection_id: unknown connection ${e.connectionId}`);
      if (e.createdBy && !users.has(e.createdBy)) problems.push(`events[${i}].created_by: unknown user ${e.createdBy}`);
    });
    if (problems.length > 0) {
      const shown = problems.slice(0, 20).join('; ');
      throw new FailedPreconditionError(problems.length > 20 ? `${shown}; … ${problems.length - 20} more` : shown);
    }
  }
}
