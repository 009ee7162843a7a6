import { exactTimestamp, SqlConditions } from '@mcp/runtime';
import type { QueryRunner } from 'typeorm';
import type { NewAuditEvent, NewSecurityEvent } from './events';

/** An audit row as read back: JSON as JSON text, hashes as hex. */
export interface AuditRow {
  id: string;
  created_at: Date;
  user_id: string | null;
  action_type: string;
  resource_type: string | null;
  resource_id: string | null;
  mcp_server_id: string | null;
  description: string | null;
  request_data: string | null;
  response_data: string | null;
  status_code: number | null;
  duration_ms: number | null;
  success: boolean;
  error_message: string | null;
  ip_address: string | null;
  user_agent: string | null;
  session_id: string | null;
  trace_id: string | null;
  chain_seq: string;
  prev_hash: string;
  row_hash: string;
  subject_key_id: string | null;
  personal_commitment: string;
  personal_data_erased: boolean;
  /** Exact created_at (microseconds) for keyset cursors. */
  cursor_ts: string;
}

export interface AuditQuery {
  userIds?: string[];
  actionTypes?: string[];
  resourceType?: string;
  resourceId?: string;
  mcpServerId?: string;
  success?: boolean;
  startTime?: Date;
  endTime?: Date;
  text?: string;
  traceId?: string;
  /** The caller's own rows only (what row-level security allows a reader without audit:read). */
  ownerId?: string;
}

export interface TimeCursor {
  ts: string;
  id: string;
}

export interface ChainCursor {
  seq: string;
  id: string;
}

const AUDIT_COLUMNS = `
  a.id, a.created_at, a.user_id, a.action_type, a.resource_type, a.resource_id, a.mcp_server_id, a.description,
  a.request_data::text AS request_data, a.response_data::text AS response_data, a.status_code, a.duration_ms,
  a.success, a.error_message, host(a.ip_address) AS ip_address, a.user_agent, a.session_id, a.trace_id,
  a.chain_seq::text AS chain_seq, encode(a.prev_hash, 'hex') AS prev_hash, encode(a.row_hash, 'hex') AS row_hash,
  a.subject_key_id, encode(a.personal_commitment, 'hex') AS personal_commitment,
  (a.subject_key_id IS NOT NULL AND a.user_id IS NULL) AS personal_data_erased,
  ${exactTimestamp('a.created_at')} AS cursor_ts`;

function addAuditQuery(c: SqlConditions, query: AuditQuery): void {
  if (query.userIds?.length) c.add((p) => `a.user_id = ANY(${p}::uuid[])`, query.userIds);
  if (query.actionTypes?.length) c.add((p) => `a.action_type = ANY(${p}::text[])`, query.actionTypes);
  if (query.resourceType) c.add((p) => `a.resource_type = ${p}`, query.resourceType);
  if (query.resourceId) c.add((p) => `a.resource_id = ${p}`, query.resourceId);
  if (query.mcpServerId) c.add((p) => `a.mcp_server_id = ${p}::uuid`, query.mcpServerId);
  if (query.success !== undefined) c.add((p) => `a.success = ${p}`, query.success);
  if (query.startTime) c.add((p) => `a.created_at >= ${p}`, query.startTime);
  if (query.endTime) c.add((p) => `a.created_at < ${p}`, query.endTime);
  if (query.traceId) c.add((p) => `a.trace_id = ${p}`, query.traceId);
  if (query.ownerId) c.add((p) => `a.user_id = ${p}::uuid`, query.ownerId);
  // The expression of the seed's GIN index (idx_audit_logs_description_fts), so the index serves it.
  if (query.text) c.add((p) => `to_tsvector('english', a.description) @@ plainto_tsquery('english', ${p})`, query.text);
}

export class AuditLogRepository {
  /**
   * Takes the chain lock before anything else, so that no concurrent retry of
   * the same events can pass the duplicate check below at the same time: the
   * chain trigger would otherwise hand a position to a row that the primary
   * key then refuses, leaving a hole in the chain.
   */
  async lockChain(q: QueryRunner): Promise<void> {
    await q.query('SELECT 1 FROM audit_chain_head FOR UPDATE');
  }

  /** Chain positions of the given (id, created_at) keys already stored. */
  async existing(q: QueryRunner, events: NewAuditEvent[]): Promise<Array<{ id: string; created_at: Date; chain_seq: string }>> {
    return q.query(
      `SELECT a.id, a.created_at, a.chain_seq::text AS chain_seq
         FROM audit_logs a JOIN unnest($1::uuid[], $2::timestamptz[]) AS k(id, created_at)
           ON a.id = k.id AND a.created_at = k.created_at`,
      [events.map((e) => e.id), events.map((e) => e.createdAt)],
    );
  }

  /** One INSERT … SELECT FROM unnest(arrays), in request order (the chain order). */
  async insert(q: QueryRunner, events: NewAuditEvent[]): Promise<Array<{ id: string; created_at: Date; chain_seq: string }>> {
    if (events.length === 0) return [];
    const col = <T>(pick: (e: NewAuditEvent) => T): T[] => events.map(pick);
    return q.query(
      `INSERT INTO audit_logs (id, created_at, user_id, action_type, resource_type, resource_id, mcp_server_id,
         description, request_data, response_data, status_code, duration_ms, success, error_message,
         ip_address, user_agent, session_id, trace_id)
       SELECT id, created_at, user_id, action_type, resource_type, resource_id, mcp_server_id,
              description, request_data, response_data, status_code, duration_ms, success, error_message,
              ip_address, user_agent, session_id, trace_id
         FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::uuid[],
           $8::text[], $9::jsonb[], $10::jsonb[], $11::int[], $12::int[], $13::bool[], $14::text[],
           $15::inet[], $16::text[], $17::text[], $18::text[]) WITH ORDINALITY
           AS e(id, created_at, user_id, action_type, resource_type, resource_id, mcp_server_id,
                description, request_data, response_data, status_code, duration_ms, success, error_message,
                ip_address, user_agent, session_id, trace_id, position)
        ORDER BY e.position
       RETURNING id, created_at, chain_seq::text AS chain_seq`,
      [
        col((e) => e.id),
        col((e) => e.createdAt),
        col((e) => e.userId),
        col((e) => e.actionType),
        col((e) => e.resourceType),
        col((e) => e.resourceId),
        col((e) => e.mcpServerId),
        col((e) => e.description),
        col((e) => e.requestData),
        col((e) => e.responseData),
        col((e) => e.statusCode),
        col((e) => e.durationMs),
        col((e) => e.success),
        col((e) => e.errorMessage),
        col((e) => e.ipAddress),
        col((e) => e.userAgent),
        col((e) => e.sessionId),
        col((e) => e.traceId),
      ],
    );
  }

  /** Newest first, strictly after `cursor` in (created_at, id) descending order. */
  async search(q: QueryRunner, query: AuditQuery, cursor: TimeCursor | undefined, limit: number): Promise<AuditRow[]> {
    const c = new SqlConditions();
    addAuditQuery(c, query);
    if (cursor) c.add((t, i) => `(a.created_at, a.id) < (${t}::timestamptz, ${i}::uuid)`, cursor.ts, cursor.id);
    const limitRef = c.param(limit);
    return q.query(
      `SELECT ${AUDIT_COLUMNS} FROM audit_logs a ${c.where()}
       ORDER BY a.created_at DESC, a.id DESC LIMIT ${limitRef}`,
      c.params,
    );
  }

  /** Chain order, strictly after `cursor`, up to position `upTo` (fixed when an export starts). */
  async inChainOrder(q: QueryRunner, query: AuditQuery, cursor: ChainCursor | undefined, upTo: string, limit: number): Promise<AuditRow[]> {
    const c = new SqlConditions();
    addAuditQuery(c, query);
    if (cursor) c.add((s, i) => `(a.chain_seq, a.id) > (${s}::bigint, ${i}::uuid)`, cursor.seq, cursor.id);
    c.add((s) => `a.chain_seq <= ${s}::bigint`, upTo);
    const limitRef = c.param(limit);
    return q.query(`SELECT ${AUDIT_COLUMNS} FROM audit_logs a ${c.where()} ORDER BY a.chain_seq, a.id LIMIT ${limitRef}`, c.params);
  }

  async newestPosition(q: QueryRunner): Promise<string> {
    const [row] = await q.query('SELECT coalesce(max(chain_seq), 0)::text AS seq FROM audit_logs');
    return row.seq;
  }

  /** Seed 004's time-range query, for one user and an explicit window. */
  async summarize(q: QueryRunner, userId: string, start: Date, end: Date): Promise<Array<{ action_type: string; count: string; avg: number | null }>> {
    return q.query(
      `SELECT action_type, COUNT(*)::text AS count, AVG(duration_ms)::float8 AS avg
         FROM audit_logs
        WHERE created_at >= $2 AND created_at < $3
          AND user_id = $1
        GROUP BY action_type
        ORDER BY COUNT(*) DESC, action_type`,
      [userId, start, end],
    );
  }
}

/** A security_events row as read back. */
export interface SecurityEventRow {
  id: string;
  occurred_at: Date;
  event_type: string;
  severity: string;
  source_service: string | null;
  user_id: string | null;
  ip_address: string | null;
  user_agent: string | null;
  description: string | null;
  threat_score: number | null;
  indicators: string;
  country_code: string | null;
  city: string | null;
  behavior_signals: string;
  status: string;
  assigned_to: string | null;
  assigned_at: Date | null;
  notes: Array<{ at: string; author_id: string; text: string }>;
  resolved: boolean;
  resolved_at: Date | null;
  resolved_by: string | null;
  resolution_notes: string | null;
  cursor_ts: string;
}

export interface SecurityEventQuery {
  severities?: string[];
  eventTypes?: string[];
  unresolvedOnly?: boolean;
  startTime?: Date;
  endTime?: Date;
  minThreatScore?: number;
  statuses?: string[];
  assignedTo?: string;
  /** JSON object text the event's indicators must contain (jsonb `@>`). */
  indicatorsContain?: string;
}

const SECURITY_COLUMNS = `
  s.id, s.occurred_at, s.event_type, s.severity, s.source_service, s.user_id, host(s.ip_address) AS ip_address,
  s.user_agent, s.description, s.threat_score::float8 AS threat_score, s.indicators::text AS indicators,
  s.country_code, s.city, s.behavior_signals::text AS behavior_signals, s.status, s.assigned_to, s.assigned_at,
  s.notes, s.resolved, s.resolved_at, s.resolved_by, s.resolution_notes,
  ${exactTimestamp('s.occurred_at')} AS cursor_ts`;

export class SecurityEventRepository {
  /** Returns the ids actually inserted (a retried id is left as it is). */
  async insert(q: QueryRunner, events: NewSecurityEvent[]): Promise<Set<string>> {
    const col = <T>(pick: (e: NewSecurityEvent) => T): T[] => events.map(pick);
    const rows: { id: string }[] = await q.query(
      `INSERT INTO security_events (id, occurred_at, event_type, severity, source_service, user_id, ip_address,
         user_agent, description, threat_score, indicators, country_code, city, behavior_signals)
       SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::inet[],
         $8::text[], $9::text[], $10::numeric[], $11::jsonb[], $12::text[], $13::text[], $14::jsonb[])
       ON CONFLICT (id) DO NOTHING
       RETURNING id`,
      [
        col((e) => e.id),
        col((e) => e.occurredAt),
        col((e) => e.eventType),
        col((e) => e.severity),
        col((e) => e.sourceService),
        col((e) => e.userId),
        col((e) => e.ipAddress),
        col((e) => e.userAgent),
        col((e) => e.description),
        col((e) => e.threatScore),
        col((e) => e.indicators),
        col((e) => e.countryCode),
        col((e) => e.city),
        col((e) => e.behaviorSignals),
      ],
    );
    return new Set(rows.map((r) => r.id));
  }

  async list(q: QueryRunner, query: SecurityEventQuery, cursor: TimeCursor | undefined, limit: number): Promise<SecurityEventRow[]> {
    const c = new SqlConditions();
    if (query.severities?.length) c.add((p) => `s.severity = ANY(${p}::text[])`, query.severities);
    if (query.eventTypes?.length) c.add((p) => `s.event_type = ANY(${p}::text[])`, query.eventTypes);
    if (query.unresolvedOnly) c.add(() => 's.resolved = false');
    if (query.startTime) c.add((p) => `s.occurred_at >= ${p}`, query.startTime);
    if (query.endTime) c.add((p) => `s.occurred_at < ${p}`, query.endTime);
    if (query.minThreatScore !== undefined) c.add((p) => `s.threat_score >= ${p}`, query.minThreatScore);
    if (query.statuses?.length) c.add((p) => `s.status = ANY(${p}::text[])`, query.statuses);
    if (query.assignedTo) c.add((p) => `s.assigned_to = ${p}::uuid`, query.assignedTo);
    // Containment, the operator idx_security_events_indicators (jsonb_path_ops) serves.
    if (query.indicatorsContain) c.add((p) => `s.indicators @> ${p}::jsonb`, query.indicatorsContain);
    if (cursor) c.add((t, i) => `(s.occurred_at, s.id) < (${t}::timestamptz, ${i}::uuid)`, cursor.ts, cursor.id);
    const limitRef = c.param(limit);
    return q.query(
      `SELECT ${SECURITY_COLUMNS} FROM security_events s ${c.where()}
       ORDER BY s.occurred_at DESC, s.id DESC LIMIT ${limitRef}`,
      c.params,
    );
  }

  /** The row, locked for the rest of the transaction (incident steps are read-check-write). */
  async lockForUpdate(q: QueryRunner, id: string): Promise<SecurityEventRow | undefined> {
    const [row] = await q.query(`SELECT ${SECURITY_COLUMNS} FROM security_events s WHERE s.id = $1 FOR UPDATE`, [id]);
    return row;
  }

  async assign(q: QueryRunner, id: string, assignee: string): Promise<SecurityEventRow> {
    const [[row]] = await q.query(
      `UPDATE security_events s SET assigned_to = $2, assigned_at = now(),
              status = CASE WHEN status = 'OPEN' THEN 'INVESTIGATING' ELSE status END
        WHERE id = $1 RETURNING ${SECURITY_COLUMNS}`,
      [id, assignee],
    );
    return row;
  }

  async addNote(q: QueryRunner, id: string, authorId: string, text: string): Promise<SecurityEventRow> {
    const [[row]] = await q.query(
      `UPDATE security_events s
          SET notes = notes || jsonb_build_array(jsonb_build_object(
                'at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'author_id', $2::text, 'text', $3::text))
        WHERE id = $1 RETURNING ${SECURITY_COLUMNS}`,
      [id, authorId, text],
    );
    return row;
  }

  async resolve(q: QueryRunner, id: string, status: string, resolvedBy: string, notes: string): Promise<SecurityEventRow> {
    const [[row]] = await q.query(
      `UPDATE security_events s SET status = $2, resolved = true, resolved_at = now(), resolved_by = $3, resolution_notes = $4
        WHERE id = $1 RETURNING ${SECURITY_COLUMNS}`,
      [id, status, resolvedBy, notes],
    );
    return row;
  }

  /** Seed 004's real-time threat detection query, with the window and threshold as parameters. */
  async failedLoginBursts(
    q: QueryRunner,
    threshold: number,
    windowSeconds: number,
  ): Promise<Array<{ ip_address: string | null; failed_attempts: string; first_at: Date; last_at: Date }>> {
    return q.query(
      `SELECT host(ip_address) AS ip_address, COUNT(*)::text AS failed_attempts,
              min(occurred_at) AS first_at, max(occurred_at) AS last_at
         FROM security_events
        WHERE event_type = 'failed_login'
          AND occurred_at >= NOW() - make_interval(secs => $2)
        GROUP BY ip_address
       HAVING COUNT(*) >= $1
        ORDER BY COUNT(*) DESC, ip_address`,
      [threshold, windowSeconds],
    );
  }

  async userExists(q: QueryRunner, userId: string): Promise<boolean> {
    const rows = await q.query('SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL', [userId]);
    return rows.length > 0;
  }
}

/** Personal fields of an audit row (what erasure removes; what personal_commitment covers). */
export const AUDIT_PERSONAL_FIELDS = [
  'user_id',
  'ip_address',
  'user_agent',
  'session_id',
  'description',
  'request_data',
  'response_data',
  'error_message',
] as const;

/** Action type of EraseSubject's own audit row. */
export const ERASE_ACTION = 'audit.erase_subject';
/** Key of the erasure row's response data listing the erased fields of other actors' rows: [{ rowId, fields: [1-based index] }]. */
export const ERASED_FIELDS_KEY = 'erasedFields';

/** Fields of other actors' rows that can name a person: searched, and erased field by field, by EraseSubject. */
const MENTION_FIELDS = ['description', 'request_data', 'response_data', 'error_message'] as const;
/** 1-based index of a personal field, as personal_digests and the erasure records number them. */
const fieldIndex = (field: (typeof AUDIT_PERSONAL_FIELDS)[number]): number => AUDIT_PERSONAL_FIELDS.indexOf(field) + 1;

/** (row, fields) emptied because they named the subject; fields are 1-based AUDIT_PERSONAL_FIELDS indexes. */
export interface ErasedFieldsRecord {
  rowId: string;
  fields: number[];
}

/** ASCII punctuation, escaped for a PostgreSQL regular expression (a backslash before a letter would be an escape). */
const escapeRegex = (text: string): string => text.replace(/[!-/:-@[-`{-~]/g, '\\$&');

/**
 * SQL for the fields among MENTION_FIELDS that match the pattern `$2`, as an
 * int[] of field indexes; `value(field)` renders a field as text. The response
 * data of erasure rows (action `$3`) is never searched: it holds row ids and
 * counts only, and is the record verification relies on.
 */
function mentionedFields(value: (field: string) => string, actionType: string): string {
  const hits = MENTION_FIELDS.map((f) => {
    const notErasureRecord = f === 'response_data' ? `${actionType} IS DISTINCT FROM $3 AND ` : '';
    return `CASE WHEN ${notErasureRecord}${value(f)} ~* $2 THEN ${fieldIndex(f)} END`;
  });
  return `array_remove(ARRAY[${hits.join(', ')}]::int[], NULL)`;
}
const LIVE_MENTIONS = mentionedFields((f) => `l.${f}::text`, 'l.action_type');
const ARCHIVED_MENTIONS = mentionedFields((f) => `ar.audit_data->>'${f}'`, "ar.audit_data->>'action_type'");
/** Every personal field's 1-based index: erasing a subject's own rows empties them all. */
const ALL_FIELDS = AUDIT_PERSONAL_FIELDS.map((_, i) => i + 1);
/**
 * SQL for archive row `ar`'s JSON copy with the fields `fields` (an int[] of
 * 1-based indexes) set to null and their nonces zeroed, in the seed's
 * row_to_json form. A copy without nonces (v1) keeps none.
 */
const ARCHIVED_ERASED = (ar: string, fields: string): string =>
  `row_to_json(json_populate_record(NULL::audit_logs, (${ar}.audit_data::jsonb
     || (SELECT jsonb_object_agg((ARRAY['${AUDIT_PERSONAL_FIELDS.join("','")}'])[f], 'null'::jsonb) FROM unnest(${fields}::int[]) f)
     || jsonb_build_object('personal_nonces', audit_personal_nonces_erased((${ar}.audit_data->>'personal_nonces')::bytea, ${fields}::int[])))::json))`;
/** Archived rows carrying per-field digests (v2); older copies have no personal_digests key or a null one. */
const ARCHIVED_V2 = `coalesce(json_typeof(ar.audit_data->'personal_digests') = 'string', false)`;

export class ErasureRepository {
  /**
   * A case-insensitive whole-word pattern for the subject's identifiers: the
   * user id, and the username, email and full name from users when they are
   * at least 3 characters long (shorter ones would match unrelated words).
   */
  async mentionPattern(q: QueryRunner, subjectId: string): Promise<string> {
    const [user] = await q.query('SELECT username, email, full_name FROM users WHERE id = $1', [subjectId]);
    const names = [user?.username, user?.email, user?.full_name]
      .map((n: string | null | undefined) => n?.trim() ?? '')
      .filter((n) => n.length >= 3);
    return `(^|\\W)(${[subjectId, ...names].map(escapeRegex).join('|')})(\\W|$)`;
  }

  /** Archived rows of, or naming, the subject under legal hold: those must be kept as they are. */
  async heldArchivedRows(q: QueryRunner, subjectId: string, pattern: string): Promise<number> {
    const [row] = await q.query(
      `SELECT count(*)::int AS n FROM audit_logs_archive ar
        WHERE ar.legal_hold AND (ar.audit_data->>'user_id' = $1 OR cardinality(${ARCHIVED_MENTIONS}) > 0)`,
      [subjectId, pattern, ERASE_ACTION],
    );
    return row.n;
  }

  /**
   * The field erasures recorded by the subject's own earlier EraseSubject
   * calls, which erasing the subject's rows is about to empty: the new erasure
   * row carries them forward, so verification still finds them.
   */
  async erasureRecordsBy(q: QueryRunner, subjectId: string): Promise<ErasedFieldsRecord[]> {
    const rows: { records: ErasedFieldsRecord[] }[] = await q.query(
      `SELECT response_data->$3 AS records FROM audit_logs
        WHERE user_id = $1 AND action_type = $2 AND jsonb_typeof(response_data->$3) = 'array'
       UNION ALL
       SELECT (audit_data->'response_data'->$3)::jsonb FROM audit_logs_archive
        WHERE audit_data->>'user_id' = $1::text AND audit_data->>'action_type' = $2
          AND json_typeof(audit_data->'response_data'->$3) = 'array'`,
      [subjectId, ERASE_ACTION, ERASED_FIELDS_KEY],
    );
    return rows.flatMap((r) => r.records);
  }

  /** Destroys the subject's commitment salt; returns its id, if the subject had one. */
  async destroySubjectKey(q: QueryRunner, subjectId: string): Promise<string | undefined> {
    const [[row]] = await q.query('DELETE FROM audit_subject_keys WHERE subject_id = $1 RETURNING key_id', [subjectId]);
    return row?.key_id;
  }

  /** Empties the subject's own live rows, and zeroes their nonces (v2) so their digests can no longer be recomputed. */
  async eraseAuditRows(q: QueryRunner, subjectId: string): Promise<number> {
    const [, count] = await q.query(
      `UPDATE audit_logs SET ${AUDIT_PERSONAL_FIELDS.map((f) => `${f} = NULL`).join(', ')},
              personal_nonces = audit_personal_nonces_erased(personal_nonces, $2)
        WHERE user_id = $1`,
      [subjectId, ALL_FIELDS],
    );
    return count;
  }

  /**
   * Rewrites the archived JSON copies without the personal fields and with
   * their nonces zeroed, in the seed's row_to_json form, and their seed
   * checksum to match.
   */
  async eraseArchivedRows(q: QueryRunner, subjectId: string): Promise<number> {
    const [, count] = await q.query(
      `WITH scrubbed AS (
         SELECT ar.id, ${ARCHIVED_ERASED('ar', '$2')} AS data
           FROM audit_logs_archive ar
          WHERE ar.audit_data->>'user_id' = $1 AND NOT ar.legal_hold)
       UPDATE audit_logs_archive ar
          SET audit_data = s.data, checksum = encode(sha256(s.data::text::bytea), 'hex')
         FROM scrubbed s WHERE ar.id = s.id`,
      [subjectId, ALL_FIELDS],
    );
    return count;
  }

  /** Empties the fields of other actors' live v2 rows that name the subject. */
  async eraseMentionsInAuditRows(q: QueryRunner, subjectId: string, pattern: string): Promise<ErasedFieldsRecord[]> {
    const [rows] = await q.query(
      `WITH hits AS (
         SELECT l.id, l.created_at, ${LIVE_MENTIONS} AS fields
           FROM audit_logs l
          WHERE l.user_id IS DISTINCT FROM $1 AND l.personal_digests IS NOT NULL)
       UPDATE audit_logs l
          SET ${MENTION_FIELDS.map((f) => `${f} = CASE WHEN ${fieldIndex(f)} = ANY(h.fields) THEN NULL ELSE l.${f} END`).join(', ')},
              personal_nonces = audit_personal_nonces_erased(l.personal_nonces, h.fields)
         FROM hits h
        WHERE l.id = h.id AND l.created_at = h.created_at AND cardinality(h.fields) > 0
       RETURNING l.id AS "rowId", h.fields`,
      [subjectId, pattern, ERASE_ACTION],
    );
    return rows;
  }

  /** The same for archived v2 copies (rewritten in row_to_json form, seed checksum recomputed). */
  async eraseMentionsInArchivedRows(q: QueryRunner, subjectId: string, pattern: string): Promise<ErasedFieldsRecord[]> {
    const [rows] = await q.query(
      `WITH hits AS (
         SELECT ar.id, ar.audit_data->>'id' AS row_id, ${ARCHIVED_MENTIONS} AS fields
           FROM audit_logs_archive ar
          WHERE ar.audit_data->>'user_id' IS DISTINCT FROM $1::text AND ${ARCHIVED_V2} AND NOT ar.legal_hold),
       scrubbed AS (
         SELECT h.id, h.row_id, h.fields, ${ARCHIVED_ERASED('ar', 'h.fields')} AS data
           FROM hits h JOIN audit_logs_archive ar ON ar.id = h.id
          WHERE cardinality(h.fields) > 0)
       UPDATE audit_logs_archive ar
          SET audit_data = s.data, checksum = encode(sha256(s.data::text::bytea), 'hex')
         FROM scrubbed s WHERE ar.id = s.id
       RETURNING s.row_id AS "rowId", s.fields`,
      [subjectId, pattern, ERASE_ACTION],
    );
    return rows;
  }

  /**
   * Other actors' rows naming the subject that were chained with a v1
   * commitment (one hash over all personal fields): emptying one field would
   * be indistinguishable from tampering, so they are kept and counted.
   */
  async legacyMentioningRows(q: QueryRunner, subjectId: string, pattern: string): Promise<number> {
    const [row] = await q.query(
      `SELECT (SELECT count(*) FROM audit_logs l
                WHERE l.user_id IS DISTINCT FROM $1 AND l.personal_digests IS NULL AND cardinality(${LIVE_MENTIONS}) > 0)
            + (SELECT count(*) FROM audit_logs_archive ar
                WHERE ar.audit_data->>'user_id' IS DISTINCT FROM $1::text AND NOT ${ARCHIVED_V2} AND cardinality(${ARCHIVED_MENTIONS}) > 0) AS n`,
      [subjectId, pattern, ERASE_ACTION],
    );
    return Number(row.n);
  }

  async eraseSecurityEvents(q: QueryRunner, subjectId: string): Promise<number> {
    const [, count] = await q.query(
      `UPDATE security_events SET user_id = NULL, ip_address = NULL, user_agent = NULL, description = NULL,
              country_code = NULL, city = NULL, indicators = '{}', behavior_signals = '{}'
        WHERE user_id = $1`,
      [subjectId],
    );
    return count;
  }

  /** Clears the description and indicators of other users' security events that name the subject (not chained). */
  async eraseMentionsInSecurityEvents(q: QueryRunner, subjectId: string, pattern: string): Promise<number> {
    const [, count] = await q.query(
      `UPDATE security_events
          SET description = CASE WHEN description ~* $2 THEN NULL ELSE description END,
              indicators = CASE WHEN indicators::text ~* $2 THEN '{}' ELSE indicators END
        WHERE user_id IS DISTINCT FROM $1 AND (description ~* $2 OR indicators::text ~* $2)`,
      [subjectId, pattern],
    );
    return count;
  }
}
