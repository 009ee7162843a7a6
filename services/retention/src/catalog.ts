import type { QueryRunner } from 'typeorm';

/** One partition of a range-partitioned table; the default partition has no bounds. */
export interface PartitionInfo {
  name: string;
  lower: Date | null;
  upper: Date | null;
}

/** What `partitioned_tables` says about a parent. */
export interface PartitionScheme {
  width: 'day' | 'month';
  premake: number;
}

const BOUND_PATTERN = "FROM \\('([^']+)'\\) TO \\('([^']+)'\\)";

/**
 * Reads of the partition catalog. Bounds come from pg_get_expr and are parsed
 * back in the same session, so the session time zone cannot skew them.
 */
export class PartitionCatalog {
  async scheme(q: QueryRunner, parent: string): Promise<PartitionScheme> {
    const [row] = await q.query('SELECT width, premake FROM partitioned_tables WHERE parent_table = $1', [parent]);
    if (!row) throw new Error(`${parent} is not registered in partitioned_tables`);
    return row;
  }

  /** Attached partitions, oldest first, the default partition (if any) first of all. */
  async partitions(q: QueryRunner, parent: string): Promise<PartitionInfo[]> {
    return q.query(
      `SELECT c.relname AS name, b[1]::timestamptz AS lower, b[2]::timestamptz AS upper
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
              LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), $2) AS b
        WHERE i.inhparent = to_regclass($1)
        ORDER BY lower NULLS FIRST`,
      [parent, BOUND_PATTERN],
    );
  }

  /**
   * Tables named like a partition of `parent` that are attached to nothing:
   * left behind by a run that detached them and stopped before finishing.
   * Their range comes from the name (partition_name() is a function of it).
   */
  async detachedPartitions(q: QueryRunner, parent: string, width: 'day' | 'month'): Promise<PartitionInfo[]> {
    const pattern = width === 'day' ? `^${parent}_p(\\d{4})(\\d{2})(\\d{2})$` : `^${parent}_y(\\d{4})m(\\d{2})$`;
    const rows: { name: string; y: string; m: string; d: string | null }[] = await q.query(
      `SELECT c.relname AS name, (regexp_match(c.relname, $1))[1] AS y, (regexp_match(c.relname, $1))[2] AS m,
              (regexp_match(c.relname, $1))[3] AS d
         FROM pg_class c
        WHERE c.relkind = 'r' AND NOT c.relispartition AND c.relname ~ $1 AND pg_table_is_visible(c.oid)
        ORDER BY c.relname`,
      [pattern],
    );
    return rows.map((r) => {
      const lower = new Date(Date.UTC(Number(r.y), Number(r.m) - 1, r.d === null ? 1 : Number(r.d)));
      const upper =
        width === 'day'
          ? new Date(lower.getTime() + 86_400_000)
          : new Date(Date.UTC(lower.getUTCFullYear(), lower.getUTCMonth() + 1, 1));
      return { name: r.name, lower, upper };
    });
  }

  async hasDefaultPartition(q: QueryRunner, parent: string): Promise<boolean> {
    const rows = await q.query(
      `SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = to_regclass($1) AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'`,
      [parent],
    );
    return rows.length > 0;
  }

  /** The lower bounds of the partitions maintain_partitions() would ensure now: the current one and `premake` ahead. */
  async premakeBounds(q: QueryRunner, scheme: PartitionScheme): Promise<Date[]> {
    const rows: { lower: Date }[] = await q.query(
      `SELECT (partition_bounds($1, at)).lower_bound AS lower
         FROM generate_series((partition_bounds($1, now())).lower_bound,
                              now() + ($2 || ' ' || $1)::interval - interval '1 microsecond',
                              ('1 ' || $1)::interval) AS at`,
      [scheme.width, scheme.premake],
    );
    return rows.map((r) => r.lower);
  }

  async partitionName(q: QueryRunner, parent: string, width: string, lower: Date): Promise<string> {
    const [row] = await q.query('SELECT partition_name($1, $2, $3) AS name', [parent, width, lower]);
    return row.name;
  }

  /** Foreign keys a partition carries; after DETACH they are its own and must go before it joins an archive. */
  async foreignKeys(q: QueryRunner, table: string): Promise<string[]> {
    const rows: { conname: string }[] = await q.query(
      `SELECT conname FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'f' ORDER BY conname`,
      [table],
    );
    return rows.map((r) => r.conname);
  }
}
