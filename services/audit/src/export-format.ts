export type ExportFormat = 'ndjson' | 'csv';

/** One chunk of an export: NDJSON lines, or RFC 4180 CSV records (the header leads the first chunk). */
export function encodeChunk(format: ExportFormat, records: Array<Record<string, unknown>>, first: boolean): string {
  if (format === 'ndjson') return records.map((r) => `${JSON.stringify(r)}\n`).join('');
  const lines = records.map((r) => Object.values(r).map(csvField).join(','));
  if (first) lines.unshift(Object.keys(records[0] ?? EXPORT_COLUMNS_TEMPLATE).join(','));
  return lines.map((l) => `${l}\r\n`).join('');
}

/** Column names for a header when the export is empty. */
const EXPORT_COLUMNS_TEMPLATE = Object.fromEntries(
  [
    'chain_seq', 'id', 'created_at', 'user_id', 'action_type', 'resource_type', 'resource_id', 'mcp_server_id',
    'description', 'request_data', 'response_data', 'status_code', 'duration_ms', 'success', 'error_message',
    'ip_address', 'user_agent', 'session_id', 'trace_id', 'subject_key_id', 'personal_commitment', 'prev_hash', 'row_hash',
  ].map((k) => [k, null]),
);

function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
