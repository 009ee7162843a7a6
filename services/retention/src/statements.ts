import { auditArchiveColumn, holdCovers, isHeld, rowColumn, type RetentionTable } from './tables';

/** Identifiers here come from the catalog or from TABLES, never from a request; quoted all the same. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Row accessor for archive rows (alias `a`): audit archive rows keep their columns inside audit_data. */
export function archiveColumn(table: RetentionTable): (name: string) => string {
  return table.archiveKind === 'checksummed_rows' ? auditArchiveColumn : rowColumn('a');
}

export interface Statement {
  sql: string;
  params: unknown[];
}

/**
 * One statement that takes the rows produced by `source` (a DELETE …
 * RETURNING * or a SELECT * of a live-table relation, using `sourceParams`),
 * copies into the archive those that must be kept — all of them when
 * `archiveAll`, else only the held ones — and returns how many rows the source
 * produced and how many of them were held. `keepDays` (audit archive only):
 * days after its time an archived row expires (null = never).
 */
export function moveToArchive(
  table: RetentionTable,
  source: string,
  sourceParams: unknown[],
  archiveAll: boolean,
  keepDays: number | null,
): Statement {
  const g = rowColumn('g');
  const all = `$${sourceParams.length + 1}::boolean`;
  if (table.archiveKind === 'partitions') {
    return {
      sql: `WITH gone AS (${source}),
        kept AS (
          INSERT INTO ${ident(table.archive)} SELECT * FROM gone g WHERE ${all} OR ${isHeld(table, g)}
          ON CONFLICT DO NOTHING RETURNING 1)
        SELECT (SELECT count(*) FROM gone)::int AS rows,
               (SELECT count(*) FROM gone g WHERE ${isHeld(table, g)})::int AS held`,
      params: [...sourceParams, archiveAll],
    };
  }
  // Seed 004: INSERT INTO audit_logs_archive (original_audit_log_id, audit_data, checksum, archive_reason)
  // SELECT id, row_to_json(audit_logs.*), encode(sha256(row_to_json(audit_logs.*)::text::bytea), 'hex'), 'retention_policy'.
  // The hash is taken over the text's UTF-8 bytes (convert_to), not ::bytea, which reads
  // backslash escapes: see docs/schema.md, deviation 13.
  // Held rows are flagged and keep retention_until NULL (the seed's legal-hold UPDATE).
  return {
    sql: `WITH gone AS (${source}),
      marked AS (
        SELECT g.id, g.created_at, row_to_json(g) AS audit_data,
               (SELECT string_agg('legal hold ' || h.id || ': ' || h.reason, '; ' ORDER BY h.placed_at, h.id)
                  FROM legal_holds h WHERE ${holdCovers(table, g)}) AS hold_reason
          FROM gone g),
      kept AS (
        INSERT INTO audit_logs_archive (original_audit_log_id, audit_data, checksum, archive_reason,
                                        retention_until, legal_hold, legal_hold_reason)
        SELECT m.id, m.audit_data, encode(sha256(convert_to(m.audit_data::text, 'UTF8')), 'hex'), 'retention_policy',
               CASE WHEN m.hold_reason IS NULL THEN m.created_at + make_interval(days => $${sourceParams.length + 2}::int) END,
               m.hold_reason IS NOT NULL, m.hold_reason
          FROM marked m WHERE ${all} OR m.hold_reason IS NOT NULL
        ON CONFLICT (original_audit_log_id) DO NOTHING RETURNING 1)
      SELECT (SELECT count(*) FROM gone)::int AS rows,
             (SELECT count(*) FROM marked WHERE hold_reason IS NOT NULL)::int AS held`,
    params: [...sourceParams, archiveAll, keepDays],
  };
}

/**
 * DELETE of the oldest `batch` rows of `relation` older than $1. Oldest
 * first, so the time index finds them without rescanning what earlier
 * batches left dead. With `returning`, a moveToArchive source.
 */
export function expiredBatch(relation: string, timeColumn: string, batch: number, returning: boolean): string {
  return `DELETE FROM ${ident(relation)} WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM ${ident(relation)} WHERE ${ident(timeColumn)} < $1
             ORDER BY ${ident(timeColumn)} LIMIT ${batch}))${returning ? ' RETURNING *' : ''}`;
}

/**
 * Deletes at most `batch` archive rows older than $1 that no hold covers.
 * Archive rows are aliased `a`.
 */
export function expireArchiveBatch(table: RetentionTable, relation: string, batch: number): string {
  const col = archiveColumn(table);
  return `DELETE FROM ${ident(relation)} WHERE ctid = ANY(ARRAY(
            SELECT a.ctid FROM ${ident(relation)} a
             WHERE ${col(table.timeColumn)} < $1 AND NOT ${isHeld(table, col)} LIMIT ${batch}))`;
}

/** Rows of an archive relation past $1: how many would expire, and how many holds keep. */
export function archiveExpiryCounts(table: RetentionTable, relation: string): string {
  const col = archiveColumn(table);
  return `SELECT count(*) FILTER (WHERE NOT held)::int AS rows, count(*) FILTER (WHERE held)::int AS held
            FROM (SELECT ${isHeld(table, col)} AS held FROM ${ident(relation)} a
                   WHERE ${col(table.timeColumn)} < $1) x`;
}

/**
 * Seed 004's legal-hold marker on audit_logs_archive, kept in step with the
 * holds: held rows get legal_hold = true and retention_until NULL; the others
 * the expiry the policy gives them ($1 days after their time; NULL = never).
 * Returns how many rows changed.
 */
export function syncAuditArchiveHolds(table: RetentionTable): string {
  return `WITH s AS (
      SELECT a.id,
             (SELECT string_agg('legal hold ' || h.id || ': ' || h.reason, '; ' ORDER BY h.placed_at, h.id)
                FROM legal_holds h WHERE ${holdCovers(table, auditArchiveColumn)}) AS hold_reason,
             ${auditArchiveColumn('created_at')} AS at
        FROM audit_logs_archive a),
    target AS (
      SELECT id, hold_reason IS NOT NULL AS legal_hold, hold_reason,
             CASE WHEN hold_reason IS NULL THEN at + make_interval(days => $1::int) END AS retention_until
        FROM s)
    UPDATE audit_logs_archive a
       SET legal_hold = t.legal_hold, legal_hold_reason = t.hold_reason, retention_until = t.retention_until
      FROM target t
     WHERE t.id = a.id
       AND (a.legal_hold, a.legal_hold_reason, a.retention_until) IS DISTINCT FROM (t.legal_hold, t.hold_reason, t.retention_until)`;
}
