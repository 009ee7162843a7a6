import type { QueryRunner } from 'typeorm';
import type { PartitionCatalog, PartitionInfo } from './catalog';
import type { StepAction, StepRecord, TableRecord } from './records';
import type { Policy, RetentionRepository } from './repository';
import { archiveExpiryCounts, ident } from './statements';
import { isHeld, rowColumn, TABLES, type RetentionTable } from './tables';

const DAY_MS = 86_400_000;

export interface Cutoffs {
  /** Rows older than this leave the live table. */
  cutoff: Date;
  /** Archive rows older than this expire; null keeps the archive indefinitely. */
  archiveCutoff: Date | null;
}

export function cutoffsFor(policy: Policy, now: Date): Cutoffs {
  const cutoff = new Date(now.getTime() - policy.hotDays * DAY_MS);
  const archiveCutoff = policy.archiveDays === null ? null : new Date(cutoff.getTime() - policy.archiveDays * DAY_MS);
  return { cutoff, archiveCutoff };
}

interface DefaultGroup {
  lower: Date;
  upper: Date;
  rows: number;
  expired: number;
  expiredHeld: number;
}

/**
 * Decides the steps of one table's run from the catalog and the policy. The
 * same plan drives a dry run (with `withCounts`, inside one REPEATABLE READ
 * snapshot, so it reports exactly what the real run would do) and a real run
 * (which counts as it goes).
 *
 * Order matters and is the same for both: first partitions an interrupted
 * run left detached; then archive expiry (before anything new reaches the
 * archive in this run); then premake and default-partition drain; then whole
 * expired partitions; then row trims (partly expired partitions and the
 * default partition's old rows).
 */
export class Planner {
  constructor(
    private readonly catalog: PartitionCatalog,
    private readonly repository: RetentionRepository,
  ) {}

  async plan(q: QueryRunner, policy: Policy, now: Date, withCounts: boolean): Promise<TableRecord> {
    const table = TABLES[policy.table];
    const { cutoff, archiveCutoff } = cutoffsFor(policy, now);
    const scheme = await this.catalog.scheme(q, table.name);
    const holdsActive = await this.repository.holdsActive(q);
    const held = (alias: string) => (holdsActive ? isHeld(table, rowColumn(alias)) : 'false');
    const steps: StepRecord[] = [];
    const count = async (relation: string, before?: Date): Promise<{ rows: number; held: number }> => {
      if (!withCounts) return { rows: 0, held: 0 };
      const [row] = await q.query(
        `SELECT count(*)::int AS rows, count(*) FILTER (WHERE ${held('r')})::int AS held FROM ${ident(relation)} r
          WHERE $1::timestamptz IS NULL OR r.${ident(table.timeColumn)} < $1`,
        [before ?? null],
      );
      return row;
    };

    for (const p of await this.catalog.detachedPartitions(q, table.name, scheme.width)) {
      const c = await count(p.name);
      steps.push(step('finish_detached', p.name, p, c.rows, c.held));
    }

    if (archiveCutoff) steps.push(...(await this.planArchiveExpiry(q, table, archiveCutoff, holdsActive, withCounts)));

    const partitions = await this.catalog.partitions(q, table.name);
    const ranged = partitions.filter((p): p is PartitionInfo & { lower: Date; upper: Date } => p.lower !== null && p.upper !== null);
    const defaultPartition = partitions.find((p) => p.lower === null);
    const groups = defaultPartition ? await this.defaultGroups(q, table, defaultPartition.name, scheme.width, cutoff, held('r')) : [];

    // Trims run after every whole-partition step; a partition drained from the default partition is trimmed after its drain.
    const trims: StepRecord[] = [];
    const covered = new Set(ranged.map((p) => p.lower.getTime()));
    for (const g of groups.filter((g) => g.upper > cutoff)) {
      const name = await this.catalog.partitionName(q, table.name, scheme.width, g.lower);
      steps.push(step('drain_default', name, g, withCounts ? g.rows : 0));
      covered.add(g.lower.getTime());
      if (g.lower < cutoff) trims.push(step('trim_rows', name, g, withCounts ? g.expired : 0, withCounts ? g.expiredHeld : 0));
    }
    for (const lower of await this.catalog.premakeBounds(q, scheme)) {
      if (covered.has(lower.getTime())) continue;
      steps.push(step('create_partition', await this.catalog.partitionName(q, table.name, scheme.width, lower), { lower, upper: null }));
    }

    const wholeAction: StepAction =
      table.archiveKind === 'partitions' && policy.archiveBeforeDelete ? 'archive_partition' : 'drop_partition';
    for (const p of ranged) {
      if (p.upper <= cutoff) {
        const c = await count(p.name);
        steps.push(step(wholeAction, p.name, p, c.rows, c.held));
      } else if (p.lower < cutoff) {
        const c = await count(p.name, cutoff);
        trims.push(step('trim_rows', p.name, p, c.rows, c.held));
      }
    }
    steps.push(...trims);
    const oldDefaultRows = groups.filter((g) => g.upper <= cutoff);
    if (defaultPartition && oldDefaultRows.length > 0) {
      const sum = (pick: (g: DefaultGroup) => number) => (withCounts ? oldDefaultRows.reduce((n, g) => n + pick(g), 0) : 0);
      steps.push(step('trim_rows', defaultPartition.name, defaultPartition, sum((g) => g.expired), sum((g) => g.expiredHeld)));
    }

    return {
      table: table.name,
      status: 'running',
      error: null,
      cutoff: cutoff.toISOString(),
      archiveCutoff: archiveCutoff?.toISOString() ?? null,
      archiveBeforeDelete: policy.archiveBeforeDelete,
      steps,
    };
  }

  /** Rows in the default partition, grouped by the partition each belongs in. */
  private async defaultGroups(
    q: QueryRunner,
    table: RetentionTable,
    relation: string,
    width: string,
    cutoff: Date,
    held: string,
  ): Promise<DefaultGroup[]> {
    const at = `r.${ident(table.timeColumn)}`;
    return q.query(
      `SELECT (partition_bounds($1, ${at})).lower_bound AS lower, (partition_bounds($1, ${at})).upper_bound AS upper,
              count(*)::int AS rows, count(*) FILTER (WHERE ${at} < $2)::int AS expired,
              count(*) FILTER (WHERE ${at} < $2 AND ${held})::int AS "expiredHeld"
         FROM ${ident(relation)} r GROUP BY 1, 2 ORDER BY 1`,
      [width, cutoff],
    );
  }

  private async planArchiveExpiry(
    q: QueryRunner,
    table: RetentionTable,
    archiveCutoff: Date,
    holdsActive: boolean,
    withCounts: boolean,
  ): Promise<StepRecord[]> {
    const counts = async (relation: string): Promise<{ rows: number; held: number }> =>
      withCounts ? (await q.query(archiveExpiryCounts(table, relation), [archiveCutoff]))[0] : { rows: 0, held: 0 };
    if (table.archiveKind === 'checksummed_rows') {
      const c = await counts(table.archive);
      return [step('expire_archive_rows', table.archive, { lower: null, upper: archiveCutoff }, c.rows, c.held)];
    }
    const steps: StepRecord[] = [];
    for (const p of await this.catalog.partitions(q, table.archive)) {
      if (p.lower !== null && p.lower >= archiveCutoff) continue;
      // A whole partition goes at once unless a hold covers some of its rows; then only the others go, row by row.
      const whole = p.upper !== null && p.upper <= archiveCutoff;
      const anyHeld =
        whole && holdsActive
          ? (await q.query(`SELECT EXISTS (SELECT 1 FROM ${ident(p.name)} a WHERE ${isHeld(table, rowColumn('a'))}) AS held`))[0].held
          : false;
      const c = await counts(p.name);
      steps.push(step(whole && !anyHeld ? 'expire_archive_partition' : 'expire_archive_rows', p.name, p, c.rows, c.held));
    }
    return steps;
  }
}

function step(action: StepAction, partition: string, range: { lower: Date | null; upper: Date | null }, rows = 0, heldRows = 0): StepRecord {
  return {
    action,
    partition,
    rangeStart: range.lower?.toISOString() ?? null,
    rangeEnd: range.upper?.toISOString() ?? null,
    rows,
    heldRows,
    done: false,
  };
}
