import { FailedPreconditionError, NotFoundError, inTransaction, recordAudit, uuidv7, type CallContext, type Redactor } from '@mcp/runtime';
import type { DataSource, QueryRunner } from 'typeorm';
import { keepDays, type HoldRow, type HoldSubject, type RetentionRepository } from './repository';
import { syncAuditArchiveHolds } from './statements';
import { TABLES } from './tables';

export interface NewHold {
  subjectType: HoldSubject;
  subjectId: string | null;
  startsAt: Date | null;
  endsAt: Date | null;
  reason: string;
}

/**
 * Legal holds. A hold takes effect when it commits; steps of a running
 * retention run that remove rows lock legal_holds (SHARE), so placing a hold
 * waits for at most one step, and every later step sees it. Seed 004's
 * markers on audit_logs_archive (legal_hold, retention_until NULL) follow
 * each change in the same transaction.
 */
export class LegalHolds {
  constructor(
    private readonly dataSource: DataSource,
    private readonly repository: RetentionRepository,
    private readonly redactor: Redactor,
  ) {}

  async place(hold: NewHold, ctx: CallContext): Promise<HoldRow> {
    return inTransaction(this.dataSource, ctx, async (q) => {
      if (hold.subjectType !== 'time_range' && !(await this.repository.subjectExists(q, hold.subjectType, hold.subjectId!))) {
        throw new FailedPreconditionError(`subject_id: unknown ${hold.subjectType} ${hold.subjectId}`);
      }
      const row = await this.repository.insertHold(q, { id: uuidv7(), ...hold, placedBy: ctx.principal.userId });
      await this.syncAuditArchive(q);
      await recordAudit(
        q,
        ctx,
        {
          action: 'legal_hold.place',
          resourceType: 'legal_hold',
          resourceId: row.id,
          description: `legal hold on ${hold.subjectType}${hold.subjectId ? ` ${hold.subjectId}` : ''}: ${hold.reason}`,
          requestData: hold,
        },
        this.redactor,
      );
      return row;
    });
  }

  async release(id: string, reason: string | null, ctx: CallContext): Promise<HoldRow> {
    return inTransaction(this.dataSource, ctx, async (q) => {
      const hold = await this.repository.holdForUpdate(q, id);
      if (!hold) throw new NotFoundError(`id: no legal hold ${id}`);
      if (hold.releasedAt) throw new FailedPreconditionError(`id: legal hold ${id} was already released at ${hold.releasedAt.toISOString()}`);
      const row = await this.repository.releaseHold(q, id, ctx.principal.userId, reason);
      await this.syncAuditArchive(q);
      await recordAudit(
        q,
        ctx,
        { action: 'legal_hold.release', resourceType: 'legal_hold', resourceId: id, description: reason ?? undefined, requestData: { id, reason } },
        this.redactor,
      );
      return row;
    });
  }

  private async syncAuditArchive(q: QueryRunner): Promise<void> {
    const policy = await this.repository.policy(q, 'audit_logs');
    await q.query(syncAuditArchiveHolds(TABLES.audit_logs), [policy ? keepDays(policy) : null]);
  }
}
