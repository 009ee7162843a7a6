/**
 * The tables retention manages and what differs between them: the time
 * column, the archive, and how a legal hold's subject is recognised in a row.
 */

export const TABLE_NAMES = ['agent_mcp_connection_logs', 'mcp_server_status_logs', 'audit_logs'] as const;
export type TableName = (typeof TABLE_NAMES)[number];

export function isTableName(value: string): value is TableName {
  return (TABLE_NAMES as readonly string[]).includes(value);
}

/**
 * SQL expressions over a row, given how to read one of its columns
 * (`col('user_id')`). Aliases inside start with h (hc, ha, hs) so they never
 * shadow the row's own alias.
 */
type SubjectMatchers = (col: (name: string) => string) => { user: string; server: string; agent: string };

export interface RetentionTable {
  name: TableName;
  /** Partition key. */
  timeColumn: string;
  archive: string;
  /**
   * 'partitions': the archive is partitioned like the live table with the
   * same columns, so a whole partition moves by DETACH + ATTACH and rows by
   * INSERT … SELECT *. 'checksummed_rows': seed 004's audit_logs_archive,
   * one row per audit row with the row's JSON and its sha256.
   */
  archiveKind: 'partitions' | 'checksummed_rows';
  subjects: SubjectMatchers;
}

const connectionLogs: RetentionTable = {
  name: 'agent_mcp_connection_logs',
  timeColumn: 'timestamp',
  archive: 'agent_mcp_connection_logs_archive',
  archiveKind: 'partitions',
  subjects: (col) => ({
    user: `${col('created_by')} = h.subject_id OR EXISTS (SELECT 1 FROM agent_mcp_connections hc JOIN agents ha ON ha.id = hc.agent_id
             WHERE hc.id = ${col('connection_id')} AND ha.user_id = h.subject_id)`,
    server: `EXISTS (SELECT 1 FROM agent_mcp_connections hc WHERE hc.id = ${col('connection_id')} AND hc.mcp_server_instance_id = h.subject_id)`,
    agent: `EXISTS (SELECT 1 FROM agent_mcp_connections hc WHERE hc.id = ${col('connection_id')} AND hc.agent_id = h.subject_id)`,
  }),
};

const statusLogs: RetentionTable = {
  name: 'mcp_server_status_logs',
  timeColumn: 'timestamp',
  archive: 'mcp_server_status_logs_archive',
  archiveKind: 'partitions',
  subjects: (col) => ({
    user: `${col('created_by')} = h.subject_id OR EXISTS (SELECT 1 FROM mcp_servers hs WHERE hs.id = ${col('server_id')} AND hs.owner_id = h.subject_id)`,
    server: `${col('server_id')} = h.subject_id`,
    agent: `EXISTS (SELECT 1 FROM agent_mcp_connections hc WHERE hc.agent_id = h.subject_id AND hc.mcp_server_instance_id = ${col('server_id')})`,
  }),
};

const auditLogs: RetentionTable = {
  name: 'audit_logs',
  timeColumn: 'created_at',
  archive: 'audit_logs_archive',
  archiveKind: 'checksummed_rows',
  subjects: (col) => ({
    user: `${col('user_id')} = h.subject_id`,
    server: `${col('mcp_server_id')} = h.subject_id`,
    agent: `${col('resource_type')} = 'agent' AND ${col('resource_id')} = h.subject_id::text`,
  }),
};

export const TABLES: Record<TableName, RetentionTable> = {
  agent_mcp_connection_logs: connectionLogs,
  mcp_server_status_logs: statusLogs,
  audit_logs: auditLogs,
};

/** Reads a column of a plain row alias. */
export const rowColumn =
  (alias: string) =>
  (name: string): string =>
    `${alias}."${name}"`;

/** Reads a column of an audit_logs_archive row out of its JSON copy of the audit row. */
export const auditArchiveColumn = (name: string): string => {
  const text = `(a.audit_data->>'${name}')`;
  if (name === 'created_at') return `${text}::timestamptz`;
  if (name === 'user_id' || name === 'mcp_server_id') return `${text}::uuid`;
  return text;
};

/** Condition on `legal_holds h`: the active hold h covers the row read through `col`. */
export function holdCovers(table: RetentionTable, col: (name: string) => string): string {
  const s = table.subjects(col);
  const at = col(table.timeColumn);
  return `h.released_at IS NULL
    AND (h.starts_at IS NULL OR ${at} >= h.starts_at)
    AND (h.ends_at IS NULL OR ${at} < h.ends_at)
    AND CASE h.subject_type
          WHEN 'time_range' THEN true
          WHEN 'user' THEN (${s.user})
          WHEN 'server' THEN (${s.server})
          WHEN 'agent' THEN (${s.agent})
        END`;
}

/** True when some active legal hold covers the row. */
export function isHeld(table: RetentionTable, col: (name: string) => string): string {
  return `EXISTS (SELECT 1 FROM legal_holds h WHERE ${holdCovers(table, col)})`;
}
