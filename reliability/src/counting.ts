/**
 * Counting, not sampling: every write carries a client-assigned key; after a
 * scenario the set of acknowledged keys is compared with the rows stored
 * under those keys (count(*) grouped by key).
 */
import type { Queryable } from './database';

/** Where the rows of one write path are and which expression holds the client key. */
export interface StoredKey {
  table: string;
  /** SQL expression over the table's columns (a column, or a JSON field). */
  expression: string;
  /** SQL type of the keys passed in (uuid lets the id index answer). */
  type: 'uuid' | 'text';
}

export const STORED_KEYS = {
  connectionEvents: { table: 'agent_mcp_connection_logs', expression: 'id', type: 'uuid' },
  auditEvents: { table: 'audit_logs', expression: 'id', type: 'uuid' },
  securityEvents: { table: 'security_events', expression: 'id', type: 'uuid' },
  /** Status reports carry their key in `details`. */
  statusReports: { table: 'mcp_server_status_logs', expression: 'details', type: 'text' },
  /** Heartbeats carry theirs in heartbeat_data (stored with the transition each one records). */
  heartbeats: { table: 'mcp_server_status_logs', expression: "heartbeat_data->>'rel'", type: 'text' },
} as const satisfies Record<string, StoredKey>;

const CHUNK = 50_000;

/** How many rows each key has (keys with no row are absent from the map). */
export async function storedCounts(db: Queryable, key: StoredKey, keys: readonly string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < keys.length; i += CHUNK) {
    const { rows } = await db.query<{ k: string; n: number }>(
      `SELECT ${key.expression}::text AS k, count(*)::int AS n FROM ${key.table}
        WHERE ${key.expression} = ANY($1::${key.type}[]) GROUP BY 1`,
      [keys.slice(i, i + CHUNK)],
    );
    for (const r of rows) counts.set(r.k, r.n);
  }
  return counts;
}

export interface Reconciliation {
  acknowledged: number;
  /** Acknowledged keys with at least one row. */
  stored: number;
  /** Acknowledged, no row. */
  lost: number;
  /** Keys with more than one row. */
  duplicated: number;
  /** Not acknowledged (refused or unanswered) but stored: fine after an ambiguous failure, never after a clean refusal. */
  storedUnacknowledged: number;
  /** Up to 5 of each, for failure messages. */
  examples: { lost: string[]; duplicated: string[] };
}

/** Compares acknowledged keys (and, optionally, keys sent but never acknowledged) with what is stored. */
export async function reconcile(
  db: Queryable,
  key: StoredKey,
  acknowledged: readonly string[],
  unacknowledged: readonly string[] = [],
): Promise<Reconciliation> {
  const counts = await storedCounts(db, key, [...acknowledged, ...unacknowledged]);
  const lost = acknowledged.filter((k) => !counts.has(k));
  const duplicated = [...counts].filter(([, n]) => n > 1).map(([k]) => k);
  return {
    acknowledged: acknowledged.length,
    stored: acknowledged.length - lost.length,
    lost: lost.length,
    duplicated: duplicated.length,
    storedUnacknowledged: unacknowledged.filter((k) => counts.has(k)).length,
    examples: { lost: lost.slice(0, 5), duplicated: duplicated.slice(0, 5) },
  };
}
