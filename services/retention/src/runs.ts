import { AbortedError, FailedPreconditionError, NotFoundError, inTransaction, recordAudit, uuidv7, type CallContext, type Redactor } from '@mcp/runtime';
import type { DataSource } from 'typeorm';
import { DROP_LANES, type Executor } from './executor';
import type { Planner } from './planner';
import { tableTotals, type TableRecord } from './records';
import type { Policy, RetentionRepository, RunRow } from './repository';
import { RunSession } from './session';

/** Session-level advisory lock held by the one real run allowed at a time (released by PostgreSQL if the process dies). */
const RUN_LOCK_KEY = 7_735_689_600_007;

export interface RunsDeps {
  dataSource: DataSource;
  repository: RetentionRepository;
  planner: Planner;
  executor: Executor;
  redactor: Redactor;
}

/** Starts retention runs: picks the policies, serialises real runs, records and audits each. */
export class RetentionRuns {
  constructor(private readonly deps: RunsDeps) {}

  /** `target`: a table name or 'all'. */
  async run(target: string, dryRun: boolean, ctx: CallContext): Promise<RunRow> {
    const { repository } = this.deps;
    const all = await inTransaction(this.deps.dataSource, ctx, (q) => repository.policies(q));
    let policies: Policy[];
    if (target === 'all') {
      policies = all.filter((p) => p.enabled);
    } else {
      const policy = all.find((p) => p.table === target);
      if (!policy) throw new NotFoundError(`policy: no retention policy named ${JSON.stringify(target)} (one of ${all.map((p) => p.table).join(', ')}, or all)`);
      if (!policy.enabled) throw new FailedPreconditionError(`policy: the ${target} policy is disabled`);
      policies = [policy];
    }
    const session = await RunSession.open(this.deps.dataSource, ctx);
    try {
      return dryRun ? await this.dryRun(session, target, policies, ctx) : await this.realRun(session, target, policies, ctx);
    } finally {
      await session.release();
    }
  }

  /** Plans with counts in one snapshot, so the report is what a real run starting now would do; changes no data. */
  private async dryRun(session: RunSession, target: string, policies: Policy[], ctx: CallContext): Promise<RunRow> {
    const records = await session.tx(
      async (q) => {
        const [{ now }] = await q.query('SELECT now() AS now');
        const planned: TableRecord[] = [];
        for (const p of policies) planned.push({ ...(await this.deps.planner.plan(q, p, now, true)), status: 'succeeded' });
        return planned;
      },
      { isolation: 'REPEATABLE READ' },
    );
    const id = uuidv7();
    return session.tx(async (q) => {
      await this.deps.repository.insertRun(q, {
        id,
        policy: target,
        dryRun: true,
        status: 'succeeded',
        requestedBy: ctx.principal.userId,
        results: Object.fromEntries(records.map((r) => [r.table, r])),
      });
      await recordAudit(
        q,
        ctx,
        {
          action: 'retention.dry_run',
          resourceType: 'retention_run',
          resourceId: id,
          requestData: { policy: target, dry_run: true },
          responseData: summary(records, true),
        },
        this.deps.redactor,
      );
      return (await this.deps.repository.run(q, id))!;
    }, { final: true });
  }

  private async realRun(session: RunSession, target: string, policies: Policy[], ctx: CallContext): Promise<RunRow> {
    const { repository, planner, executor, redactor } = this.deps;
    const [{ locked }] = await session.q.query('SELECT pg_try_advisory_lock($1) AS locked', [RUN_LOCK_KEY]);
    if (!locked) {
      const running = await repository.runningRunId(session.q);
      throw new AbortedError(`a run is in progress (run id ${running ?? 'not yet recorded'})`);
    }
    // The drop lanes' connections open while the run is recorded and planned.
    session.reserve(DROP_LANES);
    try {
      const id = uuidv7();
      const now: Date = await session.tx(async (q) => {
        // Holding the lock, no other run is alive: runs still marked running were interrupted.
        for (const stale of await repository.interruptedRuns(q)) {
          const message = 'interrupted before it finished; a later run resumed its work';
          await repository.finishRun(q, stale, 'failed', message);
          await recordAudit(
            q,
            ctx,
            { action: 'retention.run', resourceType: 'retention_run', resourceId: stale, success: false, errorMessage: message },
            redactor,
          );
        }
        await repository.insertRun(q, { id, policy: target, dryRun: false, status: 'running', requestedBy: ctx.principal.userId, results: {} });
        await recordAudit(
          q,
          ctx,
          { action: 'retention.run.start', resourceType: 'retention_run', resourceId: id, requestData: { policy: target, dry_run: false } },
          redactor,
        );
        return (await q.query('SELECT now() AS now'))[0].now;
      });

      const records: TableRecord[] = [];
      for (const policy of policies) {
        const progress = { record: undefined as TableRecord | undefined };
        try {
          progress.record = await session.tx((q) => planner.plan(q, policy, now, false));
          await session.tx((q) => repository.saveTable(q, id, progress.record!));
          await executor.execute(session, id, policy, progress as { record: TableRecord });
          progress.record = { ...progress.record, status: 'succeeded' };
        } catch (err) {
          const error = ctx.signal.aborted ? String((ctx.signal.reason as Error).message) : errorMessage(err);
          ctx.logger.warn({ table: policy.table, err: errorMessage(err) }, 'retention step failed');
          progress.record = { ...(progress.record ?? emptyRecord(policy)), status: 'failed', error };
        }
        const record = progress.record;
        records.push(record);
        await session.tx((q) => repository.saveTable(q, id, record), { final: true });
      }

      const failed = records.filter((r) => r.status === 'failed');
      const status = failed.length === 0 ? 'succeeded' : 'failed';
      const error = failed.length === 0 ? null : failed.map((r) => `${r.table}: ${r.error}`).join('; ');
      return await session.tx(
        async (q) => {
          await repository.finishRun(q, id, status, error);
          await repository.writeSystemLog(q, `Retention run ${id} (${target}) ${status}: ${describe(records)}`, {
            run_id: id,
            policy: target,
            status,
            tables: summary(records, false),
          });
          await recordAudit(
            q,
            ctx,
            {
              action: 'retention.run',
              resourceType: 'retention_run',
              resourceId: id,
              success: status === 'succeeded',
              errorMessage: error ?? undefined,
              responseData: summary(records, false),
            },
            redactor,
          );
          return (await repository.run(q, id))!;
        },
        { final: true },
      );
    } finally {
      await session.q.query('SELECT pg_advisory_unlock($1)', [RUN_LOCK_KEY]).catch(() => undefined);
    }
  }
}

function emptyRecord(policy: Policy): TableRecord {
  return { table: policy.table, status: 'failed', error: null, cutoff: '', archiveCutoff: null, archiveBeforeDelete: policy.archiveBeforeDelete, steps: [] };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function summary(records: TableRecord[], dryRun: boolean): Record<string, unknown> {
  return Object.fromEntries(records.map((r) => [r.table, { status: r.status, ...tableTotals(r, dryRun) }]));
}

/** The seed's system_logs wording, one clause per table. */
function describe(records: TableRecord[]): string {
  return records
    .map((r) => {
      const t = tableTotals(r, false);
      return `${r.table}: ${t.rowsArchived} archived, ${t.rowsDeleted} deleted, ${t.archiveRowsExpired} expired from the archive, ${t.partitionsCreated} partitions created`;
    })
    .join('; ');
}
