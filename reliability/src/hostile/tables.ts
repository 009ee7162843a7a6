import type { Queryable } from '../database';

/** Row counts of `tables` (names from a fixed list, never from input). */
export async function rowCounts(db: Queryable, tables: readonly string[]): Promise<Record<string, number>> {
  const { rows } = await db.query<Record<string, number>>(
    `SELECT ${tables.map((t) => `(SELECT count(*)::int FROM ${t}) AS ${t}`).join(', ')}`,
  );
  return rows[0];
}

/** Tables whose count differs between two snapshots. */
export function changedTables(before: Record<string, number>, after: Record<string, number>): string[] {
  return Object.keys(before).filter((t) => before[t] !== after[t]);
}

/** How many rows of `table` contain `text` exactly (as it appears in the row's JSON form, where jsonb values are JSON too). */
export async function rowsContaining(db: Queryable, table: string, text: string): Promise<number> {
  const needle = JSON.stringify(text).slice(1, -1);
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} t WHERE strpos(row_to_json(t)::text, $1) > 0`, [needle]);
  return rows[0].n;
}
