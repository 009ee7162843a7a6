import { platformMetrics } from '@mcp/runtime';
import type { QueryRunner } from 'typeorm';
import type { PartitionCatalog } from './catalog';
import type { StepAction, StepRecord, TableRecord } from './records';
import { keepDays, type Policy, type RetentionRepository } from './repository';
import type { RunSession } from './session';
import { expireArchiveBatch, expiredBatch, ident, moveToArchive, syncAuditArchiveHolds, archiveExpiryCounts } from './statements';
import { isHeld, rowColumn, TABLES, type RetentionTable } from './tables';

/** Progress of one step within one transaction. */
interface StepProgress {
  rows: number;
  held: number;
  done: boolean;
}

/**
 * The retention metric for a step's committed progress, split as tableTotals
 * splits it: rows leaving the live table are archived (all when archiving
 * before delete, else only the held ones) or else deleted (row paths) or
 * dropped with their partition; rows expiring from the archive are counted
 * against the archive table.
 */
function countCommitted(table: RetentionTable, archiveBeforeDelete: boolean, action: StepAction, p: StepProgress): void {
  switch (action) {
    case 'archive_partition':
      platformMetrics.retentionRows(table.name, 'archived', p.rows);
      break;
    case 'trim_rows':
    case 'drop_partition':
    case 'finish_detached': {
      const archived = archiveBeforeDelete ? p.rows : p.held;
      platformMetrics.retentionRows(table.name, 'archived', archived);
      platformMetrics.retentionRows(table.name, action === 'trim_rows' ? 'deleted' : 'dropped_partition_rows', p.rows - archived);
      break;
    }
    case 'expire_archive_rows':
      platformMetrics.retentionRows(table.archive, 'deleted', p.rows);
      break;
    case 'expire_archive_partition':
      platformMetrics.retentionRows(table.archive, 'dropped_partition_rows', p.rows);
      break;
  }
}

/**
 * Carries out a planned table record in a real run. Every step is one or
 * more short transactions, and each transaction also writes the step's
 * progress to retention_runs, so the recorded counts are exactly what
 * committed. Every step checks the state it acts on, so repeating it after an
 * interruption is safe: a partition detached by a run that then died is
 * found by name and finished by the next run (see Planner).
 */
export class Executor {
  constructor(
    private readonly catalog: PartitionCatalog,
    private readonly repository: RetentionRepository,
    /** Rows per transaction on the row paths. */
    private readonly batchSize: number,
  ) {}

  /** `progress.record` always holds what has committed, also when a step fails. */
  async execute(session: RunSession, runId: string, policy: Policy, progress: { record: TableRecord }): Promise<void> {
    const table = TABLES[policy.table];
    const record = () => progress.record;
    /** Runs `work` in one transaction that also records the new progress of the steps at `indices`. */
    const advanceAll = async (indices: number[], ddl: boolean, work: (q: QueryRunner) => Promise<StepProgress[]>): Promise<StepProgress[]> => {
      let next = record();
      const result = await (ddl ? session.ddlTx.bind(session) : session.tx.bind(session))(async (q) => {
        const progress = await work(q);
        const steps = [...record().steps];
        indices.forEach((index, k) => {
          const p = progress[k];
          steps[index] = { ...steps[index], rows: steps[index].rows + p.rows, heldRows: steps[index].heldRows + p.held, done: p.done };
        });
        next = { ...record(), steps };
        await this.repository.saveTable(q, runId, next);
        return progress;
      });
      progress.record = next;
      indices.forEach((index, k) => countCommitted(table, next.archiveBeforeDelete, next.steps[index].action, result[k]));
      return result;
    };
    const advance = async (index: number, ddl: boolean, work: (q: QueryRunner) => Promise<StepProgress>): Promise<StepProgress> =>
      (await advanceAll([index], ddl, async (q) => [await work(q)]))[0];

    if (table.archiveKind === 'checksummed_rows') {
      await session.tx((q) => q.query(syncAuditArchiveHolds(table), [keepDays(policy)]));
    }

    for (let i = 0; i < record().steps.length; i++) {
      session.throwIfAborted();
      const step = record().steps[i];
      const lower = step.rangeStart ? new Date(step.rangeStart) : null;
      switch (step.action) {
        case 'create_partition':
          await advance(i, true, async (q) => {
            await q.query('SELECT ensure_partition($1, $2)', [table.name, lower]);
            return { rows: 0, held: 0, done: true };
          });
          break;
        case 'drain_default':
          await advance(i, true, async (q) => {
            await q.query('SELECT ensure_partition($1, $2)', [table.name, lower]);
            // The partition is new and locked until commit: what it holds is what was drained.
            const [c] = await q.query(`SELECT count(*)::int AS n FROM ${ident(step.partition)}`);
            return { rows: c.n, held: 0, done: true };
          });
          break;
        case 'archive_partition':
          await this.detach(session, table, step);
          await advance(i, true, (q) => this.finishDetached(q, table, policy, step));
          break;
        case 'drop_partition': {
          // Detached one by one (each holds the parent's lock for milliseconds), then dropped together:
          // a transaction that drops files always waits for its commit to reach disk, so one commit
          // for all of them instead of one each.
          const batch: number[] = [];
          for (let j = i; j < record().steps.length && record().steps[j].action === 'drop_partition'; j++) batch.push(j);
          for (const j of batch) await this.detach(session, table, record().steps[j]);
          await advanceAll(batch, true, async (q) => {
            const done: StepProgress[] = [];
            for (const j of batch) done.push(await this.finishDetached(q, table, policy, record().steps[j]));
            return done;
          });
          i = batch[batch.length - 1];
          break;
        }
        case 'finish_detached':
          await advance(i, true, (q) => this.finishDetached(q, table, policy, step));
          break;
        case 'trim_rows': {
          const cutoff = new Date(record().cutoff);
          const archiveAll = policy.archiveBeforeDelete;
          const move = moveToArchive(table, expiredBatch(step.partition, table.timeColumn, this.batchSize), [cutoff], archiveAll, keepDays(policy));
          for (let done = false; !done; ) {
            session.throwIfAborted();
            ({ done } = await advance(i, false, async (q) => {
              await this.repository.lockHolds(q);
              const [r] = await q.query(move.sql, move.params);
              return { rows: r.rows, held: r.held, done: r.rows < this.batchSize };
            }));
          }
          break;
        }
        case 'expire_archive_rows': {
          const archiveCutoff = new Date(record().archiveCutoff!);
          const sql = expireArchiveBatch(table, step.partition, this.batchSize);
          for (let more = true; more; ) {
            session.throwIfAborted();
            const { rows } = await advance(i, false, async (q) => {
              await this.repository.lockHolds(q);
              const [, deleted] = await q.query(sql, [archiveCutoff]);
              return { rows: deleted, held: 0, done: false };
            });
            more = rows >= this.batchSize;
          }
          // What is left past the cutoff is what the holds keep.
          await advance(i, false, async (q) => {
            const [c] = await q.query(archiveExpiryCounts(table, step.partition), [archiveCutoff]);
            return { rows: 0, held: c.held, done: true };
          });
          break;
        }
        case 'expire_archive_partition':
          await advance(i, true, async (q) => {
            await this.repository.lockHolds(q);
            const [c] = await q.query(
              `SELECT count(*)::int AS rows, count(*) FILTER (WHERE ${isHeld(table, rowColumn('a'))})::int AS held FROM ${ident(step.partition)} a`,
            );
            if (c.held > 0) throw new Error(`a legal hold placed during the run covers rows of ${step.partition}; the next run keeps them`);
            await q.query(`ALTER TABLE ${ident(table.archive)} DETACH PARTITION ${ident(step.partition)}`);
            await q.query(`DROP TABLE ${ident(step.partition)}`);
            return { rows: c.rows, held: 0, done: true };
          });
          break;
      }
    }
  }

  /**
   * Plain DETACH: PostgreSQL refuses DETACH … CONCURRENTLY when the parent has
   * a default partition ("cannot detach partitions concurrently when a default
   * partition exists", SQLSTATE 55000), and every table here has one. The
   * ACCESS EXCLUSIVE lock it takes on the parent lasts only this short
   * transaction, and waits at most LOCK_TIMEOUT_MS before giving way.
   */
  private async detach(session: RunSession, table: RetentionTable, step: StepRecord): Promise<void> {
    await session.ddlTx((q) => q.query(`ALTER TABLE ${ident(table.name)} DETACH PARTITION ${ident(step.partition)}`));
  }

  /**
   * Finishes a partition detached from the live table. Partitioned archive:
   * it becomes an archive partition (rows of its range already in the archive
   * join it first). Otherwise its rows that must be kept — all of them for
   * the audit archive when archiving, else the held ones — are copied to the
   * archive, and it is dropped.
   */
  private async finishDetached(q: QueryRunner, table: RetentionTable, policy: Policy, step: StepRecord): Promise<StepProgress> {
    const part = ident(step.partition);
    if (table.archiveKind === 'partitions' && policy.archiveBeforeDelete) {
      const [c] = await q.query(`SELECT count(*)::int AS rows, count(*) FILTER (WHERE ${isHeld(table, rowColumn('r'))})::int AS held FROM ${part} r`);
      // Archive history is kept when a connection or user is deleted: no foreign keys in the archive.
      for (const fk of await this.catalog.foreignKeys(q, step.partition)) {
        await q.query(`ALTER TABLE ${part} DROP CONSTRAINT ${ident(fk)}`);
      }
      const lower = new Date(step.rangeStart!);
      const upper = new Date(step.rangeEnd!);
      for (const p of await this.catalog.partitions(q, table.archive)) {
        const at = ident(table.timeColumn);
        if (p.lower === null) {
          await q.query(
            `WITH moved AS (DELETE FROM ${ident(p.name)} WHERE ${at} >= $1 AND ${at} < $2 RETURNING *) INSERT INTO ${part} SELECT * FROM moved`,
            [lower, upper],
          );
        } else if (p.lower < upper && p.upper! > lower) {
          await q.query(`INSERT INTO ${part} SELECT * FROM ${ident(p.name)}`);
          await q.query(`ALTER TABLE ${ident(table.archive)} DETACH PARTITION ${ident(p.name)}`);
          await q.query(`DROP TABLE ${ident(p.name)}`);
        }
      }
      await q.query(
        `ALTER TABLE ${ident(table.archive)} ATTACH PARTITION ${part} FOR VALUES FROM ('${lower.toISOString()}') TO ('${upper.toISOString()}')`,
      );
      return { rows: c.rows, held: c.held, done: true };
    }
    await this.repository.lockHolds(q);
    const archiveAll = table.archiveKind === 'checksummed_rows' && policy.archiveBeforeDelete;
    let moved: { rows: number; held: number };
    if (archiveAll || (await this.repository.holdsActive(q))) {
      const move = moveToArchive(table, `SELECT * FROM ${part}`, [], archiveAll, keepDays(policy));
      [moved] = await q.query(move.sql, move.params);
    } else {
      // No hold exists (and none can be placed before this commits): nothing to keep, only to count.
      [moved] = await q.query(`SELECT count(*)::int AS rows, 0 AS held FROM ${part}`);
    }
    await q.query(`DROP TABLE ${part}`);
    return { rows: moved.rows, held: moved.held, done: true };
  }
}

