import { platformMetrics } from '@mcp/runtime';
import type { QueryRunner } from 'typeorm';
import type { PartitionCatalog } from './catalog';
import type { StepAction, StepRecord, TableRecord } from './records';
import { keepDays, type Policy, type RetentionRepository } from './repository';
import type { RunSession } from './session';
import { archiveExpiryCounts, expireArchiveBatch, expiredBatch, ident, moveToArchive, syncAuditArchiveHolds } from './statements';
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
 * Detached partitions are dropped on at most this many connections of their
 * own beside the run's (the service's pool leaves room for them). A
 * transaction that drops tables returns only once their files' space is
 * freed, the longest wait of a run (about 1 s for 31 daily partitions, 1.1 GB
 * in some 400 files, on the benchmark's disk, one file at a time whatever the
 * number of connections); it releases its locks and shows its changes before
 * that wait, so the run goes on detaching and trimming meanwhile, and the
 * other lanes count and drop the next batches, keeping the disk busy.
 * Measured: 3 lanes finish ~0.2 s sooner than 2, 4 no sooner than 3.
 */
export const DROP_LANES = 3;
/**
 * A lane drops at most this many partitions per transaction. The disk frees
 * dropped files one after another, so what shortens a run is keeping it busy:
 * a lane that took every partition detached so far (19 of 31 in one measured
 * run) counted and dropped them while the disk sat idle, then freed them
 * alone while the other lanes found nothing left to take. Small batches keep
 * the lanes taking turns, one counting while another's COMMIT frees files.
 */
const PARTITIONS_PER_DROP = 3;

/**
 * Drops detached partitions in the background: each lane takes the oldest
 * partitions detached so far, up to PARTITIONS_PER_DROP, and drops them in
 * one transaction. finish() waits for all of them and rethrows the first
 * failure; partitions left detached by a failure are finished by the next run.
 */
class DropLanes {
  private readonly queue: number[] = [];
  private readonly running = new Set<Promise<void>>();
  /** Lanes that will still take from the queue. */
  private taking = 0;
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly session: RunSession,
    private readonly dropBatch: (lane: RunSession, indices: number[]) => Promise<unknown>,
  ) {}

  add(index: number): void {
    this.throwIfFailed();
    this.queue.push(index);
    if (this.taking < DROP_LANES) {
      this.taking++;
      const lane: Promise<void> = this.drain()
        .catch((error: unknown) => {
          this.failure ??= { error };
        })
        .finally(() => this.running.delete(lane));
      this.running.add(lane);
    }
  }

  throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }

  async finish(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
    this.throwIfFailed();
  }

  private async drain(): Promise<void> {
    let lane: RunSession | undefined;
    try {
      lane = await this.session.fork();
      while (this.queue.length > 0 && !this.failure) await this.dropBatch(lane, this.queue.splice(0, PARTITIONS_PER_DROP));
    } finally {
      // In the same turn as the last look at the queue: add() never counts on a lane that stopped taking.
      this.taking--;
      await lane?.release();
    }
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
    /** Runs `work` in one transaction on `on` that also records the new progress of the steps at `indices`. */
    const advanceAll = async (on: RunSession, indices: number[], ddl: boolean, work: (q: QueryRunner) => Promise<StepProgress[]>): Promise<StepProgress[]> => {
      const { done, steps } = await (ddl ? on.ddlTx.bind(on) : on.tx.bind(on))(async (q) => {
        const done = await work(q);
        const steps = indices.map((index, k) => {
          const s = record().steps[index];
          return { ...s, rows: s.rows + done[k].rows, heldRows: s.heldRows + done[k].held, done: done[k].done };
        });
        await this.repository.saveSteps(q, runId, table.name, indices.map((index, k) => ({ index, step: steps[k] })));
        return { done, steps };
      });
      // Only these steps: others may have advanced meanwhile on another connection.
      const all = [...record().steps];
      indices.forEach((index, k) => (all[index] = steps[k]));
      progress.record = { ...record(), steps: all };
      indices.forEach((index, k) => countCommitted(table, record().archiveBeforeDelete, all[index].action, done[k]));
      return done;
    };
    const advance = async (index: number, ddl: boolean, work: (q: QueryRunner) => Promise<StepProgress>): Promise<StepProgress> =>
      (await advanceAll(session, [index], ddl, async (q) => [await work(q)]))[0];
    const archivesPartitions = table.archiveKind === 'partitions' && policy.archiveBeforeDelete;
    const drops = new DropLanes(session, (lane, indices) =>
      advanceAll(lane, indices, true, (q) => this.dropDetached(q, table, policy, indices.map((j) => record().steps[j]))),
    );

    try {
      if (table.archiveKind === 'checksummed_rows') {
        await session.tx((q) => q.query(syncAuditArchiveHolds(table), [keepDays(policy)]));
      }
      for (let i = 0; i < record().steps.length; i++) {
        session.throwIfAborted();
        drops.throwIfFailed();
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
          case 'drop_partition':
          case 'finish_detached':
            // finish_detached: a partition an interrupted run left detached, foreign keys and all, or not.
            if (step.action !== 'finish_detached') await this.detach(session, table, step);
            await session.ddlTx((q) => this.dropForeignKeys(q, step.partition));
            if (archivesPartitions) await advance(i, true, (q) => this.archiveDetached(q, table, step));
            else drops.add(i);
            break;
          case 'trim_rows': {
            const cutoff = new Date(record().cutoff);
            const archiveAll = policy.archiveBeforeDelete;
            const move = moveToArchive(table, expiredBatch(step.partition, table.timeColumn, this.batchSize, true), [cutoff], archiveAll, keepDays(policy));
            const remove = expiredBatch(step.partition, table.timeColumn, this.batchSize, false);
            for (let done = false; !done; ) {
              session.throwIfAborted();
              ({ done } = await advance(i, false, async (q) => {
                await this.repository.lockHolds(q);
                if (!archiveAll && !(await this.repository.holdsActive(q))) {
                  // No hold exists (and none can be placed before this commits): nothing to keep, so no copy of the rows.
                  const [, rows] = await q.query(remove, [cutoff]);
                  return { rows, held: 0, done: rows < this.batchSize };
                }
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
    } catch (err) {
      // What the lanes committed is counted before the failure is reported.
      await drops.finish().catch(() => undefined);
      throw err;
    }
    await drops.finish();
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
   * A detached partition keeps the foreign keys it had through its parent;
   * it is about to be dropped, or to join the archive, which keeps the
   * history of deleted connections and users and so has none. Removing one
   * takes an ACCESS EXCLUSIVE lock on the table it points at (users,
   * connections: read by every call), so that happens here, in a transaction
   * of its own that holds it for milliseconds, and never while counting,
   * copying or dropping; nor on a drop lane, where it could deadlock with the
   * next DETACH, which locks the same tables.
   */
  private async dropForeignKeys(q: QueryRunner, partition: string): Promise<void> {
    const fks = await this.catalog.foreignKeys(q, partition);
    if (fks.length > 0) await q.query(`ALTER TABLE ${ident(partition)} ${fks.map((fk) => `DROP CONSTRAINT ${ident(fk)}`).join(', ')}`);
  }

  /**
   * A partition detached from the live table, its foreign keys dropped,
   * becomes an archive partition (rows of its range already in the archive
   * join it first).
   */
  private async archiveDetached(q: QueryRunner, table: RetentionTable, step: StepRecord): Promise<StepProgress> {
    const part = ident(step.partition);
    const [c] = await q.query(`SELECT count(*)::int AS rows, count(*) FILTER (WHERE ${isHeld(table, rowColumn('r'))})::int AS held FROM ${part} r`);
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

  /**
   * Drops partitions detached from the live table, first copying to the
   * archive the rows that must be kept: all of them for the audit archive
   * when archiving, else the held ones. They are locked before anything is
   * counted, so what is counted is what is dropped. Their foreign keys are
   * gone already (dropForeignKeys), so this locks nothing else.
   */
  private async dropDetached(q: QueryRunner, table: RetentionTable, policy: Policy, steps: StepRecord[]): Promise<StepProgress[]> {
    const parts = steps.map((s) => ident(s.partition));
    await q.query(`LOCK TABLE ${parts.join(', ')} IN ACCESS EXCLUSIVE MODE`);
    await this.repository.lockHolds(q);
    const archiveAll = table.archiveKind === 'checksummed_rows' && policy.archiveBeforeDelete;
    const moved: Array<{ rows: number; held: number }> = [];
    if (archiveAll || (await this.repository.holdsActive(q))) {
      for (const part of parts) {
        const move = moveToArchive(table, `SELECT * FROM ${part}`, [], archiveAll, keepDays(policy));
        moved.push((await q.query(move.sql, move.params))[0]);
      }
    } else {
      // No hold exists (and none can be placed before this commits): nothing to keep, only to count.
      const [counts] = await q.query(`SELECT ${parts.map((part, k) => `(SELECT count(*) FROM ${part})::int AS c${k}`).join(', ')}`);
      parts.forEach((_, k) => moved.push({ rows: counts[`c${k}`], held: 0 }));
    }
    await q.query(`DROP TABLE ${parts.join(', ')}`);
    return moved.map((m) => ({ ...m, done: true }));
  }
}
