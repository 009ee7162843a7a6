import { once } from 'node:events';
import { COMMIT_ORDER_HORIZON_CTE, commitOrderPredicates, arrayLiteral, copyTextLine, exactTimestamp, SqlConditions, type CommitCursor } from '@mcp/runtime';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { QueryRunner } from 'typeorm';
import type { NewConnectionEvent } from './events';

/** Channel NOTIFY'd by every ingest transaction; live tails LISTEN on it. */
export const CONNECTION_LOG_CHANNEL = 'agent_mcp_connection_logs';

/** An event with its final id and timestamp (the idempotency key). */
export interface KeyedEvent extends NewConnectionEvent {
  id: string;
  timestamp: Date;
}

/** A stored row as read back, JSON columns as JSON text. */
export interface ConnectionLogRow {
  id: string;
  connection_id: string;
  agent_id: string;
  event_type: string;
  event_details: string | null;
  old_status: string | null;
  new_status: string | null;
  request_data: string | null;
  response_data: string | null;
  error_data: string | null;
  latency_ms: number | null;
  bytes_transferred: string | null;
  timestamp: Date;
  created_by: string | null;
  user_agent: string | null;
  ip_address: string | null;
  session_id: string | null;
  /** Exact timestamp (microseconds) for keyset cursors. */
  cursor_ts: string;
  /** Commit-order position, for tails. */
  ingest_xid: string;
}

export interface EventQuery {
  connectionIds?: string[];
  agentId?: string;
  eventTypes?: string[];
  startTime?: Date;
  endTime?: Date;
}

export interface TimeCursor {
  ts: string;
  id: string;
}

const ROW_COLUMNS = `
  l.id, l.connection_id, amc.agent_id, l.event_type, l.event_details, l.old_status, l.new_status,
  l.request_data::text AS request_data, l.response_data::text AS response_data, l.error_data::text AS error_data,
  l.latency_ms, l.bytes_transferred::text AS bytes_transferred, l.timestamp, l.created_by, l.user_agent,
  host(l.ip_address) AS ip_address, l.session_id,
  ${exactTimestamp('l.timestamp')} AS cursor_ts,
  l.ingest_xid::text AS ingest_xid`;

const FROM_LOGS = `agent_mcp_connection_logs l JOIN agent_mcp_connections amc ON amc.id = l.connection_id`;

function addEventQuery(c: SqlConditions, query: EventQuery): void {
  if (query.connectionIds?.length) c.add((p) => `l.connection_id = ANY(${p}::uuid[])`, query.connectionIds);
  if (query.agentId) c.add((p) => `amc.agent_id = ${p}::uuid`, query.agentId);
  if (query.eventTypes?.length) c.add((p) => `l.event_type = ANY(${p}::text[])`, query.eventTypes);
  if (query.startTime) c.add((p) => `l.timestamp >= ${p}`, query.startTime);
  if (query.endTime) c.add((p) => `l.timestamp < ${p}`, query.endTime);
}

/** The columns an ingest writes, in the order both ingest statements send them. */
const INSERT_COLUMNS = `id, connection_id, event_type, event_details, old_status, new_status,
  request_data, response_data, error_data, latency_ms, bytes_transferred,
  timestamp, created_by, user_agent, ip_address, session_id`;

export class ConnectionLogRepository {
  /** Ids (lower case) of the given connections that exist. */
  async existingConnections(q: QueryRunner, ids: string[]): Promise<Set<string>> {
    const rows: { id: string }[] = await q.query(
      'SELECT id FROM agent_mcp_connections WHERE id = ANY($1::uuid[])',
      [ids],
    );
    return new Set(rows.map((r) => r.id));
  }

  async existingUsers(q: QueryRunner, ids: string[]): Promise<Set<string>> {
    const rows: { id: string }[] = await q.query('SELECT id FROM users WHERE id = ANY($1::uuid[])', [ids]);
    return new Set(rows.map((r) => r.id));
  }

  /**
   * One INSERT … SELECT for the whole batch: one round trip and one plan
   * however many rows. Scalar columns travel as arrays; the three JSON
   * payloads as one JSON array of {q, s, e} objects (absent key = NULL), so
   * already-validated JSON text is embedded as it is instead of being escaped
   * into array elements and PostgreSQL parses it once. ON CONFLICT on the
   * primary key (id, timestamp) makes retries store nothing twice. Returns the
   * events actually inserted by this call: when every row went in (the common
   * case) that is all of them, otherwise this transaction's rows are read back.
   */
  async insertEvents(q: QueryRunner, events: KeyedEvent[]): Promise<InsertedEvents> {
    const col = (pick: (e: KeyedEvent) => string | number | Date | null): string => arrayLiteral(events.map(pick));
    const ids = col((e) => e.id);
    const timestamps = col((e) => e.timestamp);
    const result: { affected?: number } = await q.query(
      `INSERT INTO agent_mcp_connection_logs (${INSERT_COLUMNS})
       SELECT r.id, r.connection_id, r.event_type, r.event_details, r.old_status, r.new_status,
              r.payload -> 'q', r.payload -> 's', r.payload -> 'e', r.latency_ms, r.bytes_transferred,
              r.timestamp, r.created_by, r.user_agent, r.ip_address, r.session_id
         FROM ROWS FROM (
           unnest($1::uuid[]), unnest($2::uuid[]), unnest($3::text[]), unnest($4::text[]), unnest($5::text[]),
           unnest($6::text[]), jsonb_array_elements($7::jsonb), unnest($8::int[]), unnest($9::bigint[]),
           unnest($10::timestamptz[]), unnest($11::uuid[]), unnest($12::text[]), unnest($13::inet[]), unnest($14::text[])
         ) AS r(id, connection_id, event_type, event_details, old_status, new_status, payload, latency_ms,
                bytes_transferred, timestamp, created_by, user_agent, ip_address, session_id)
       ON CONFLICT (id, timestamp) DO NOTHING`,
      [
        ids,
        col((e) => e.connectionId),
        col((e) => e.eventType),
        col((e) => e.eventDetails),
        col((e) => e.oldStatus),
        col((e) => e.newStatus),
        payloadsJson(events),
        col((e) => e.latencyMs),
        col((e) => e.bytesTransferred),
        timestamps,
        col((e) => e.createdBy),
        col((e) => e.userAgent),
        col((e) => e.ipAddress),
        col((e) => e.sessionId),
      ],
      true,
    );
    const insertedCount = result.affected ?? 0;
    if (insertedCount === 0) return { count: 0, includes: () => false };
    // Delivered at commit; the payload (this transaction's id) lets tails tell
    // a commit they cannot read yet (held back by an older open transaction).
    await q.query('SELECT pg_notify($1, pg_current_xact_id()::text)', [CONNECTION_LOG_CHANNEL]);
    if (insertedCount === events.length) return { count: insertedCount, includes: () => true };
    const rows: { id: string; ts: string }[] = await q.query(
      `SELECT id, (extract(epoch FROM timestamp) * 1000)::bigint::text AS ts FROM agent_mcp_connection_logs
        WHERE id = ANY($1::uuid[]) AND timestamp = ANY($2::timestamptz[]) AND ingest_xid = pg_current_xact_id()::text::bigint`,
      [ids, timestamps],
    );
    const keys = new Set(rows.map((r) => eventKey(r.id, Number(r.ts))));
    return { count: keys.size, includes: (e) => keys.has(eventKey(e.id, e.timestamp.getTime())) };
  }

  /**
   * The fast path for a batch expected to be new: COPY, which PostgreSQL
   * inserts in multi-row batches per partition, at about two thirds of the
   * CPU of the INSERT … SELECT above. COPY has no ON CONFLICT: an event that
   * is already stored fails it with a unique violation (23505), which aborts
   * the transaction, and the caller redoes the batch with insertEvents.
   */
  async copyNewEvents(q: QueryRunner, events: KeyedEvent[]): Promise<InsertedEvents> {
    let text = '';
    for (const e of events) {
      text += copyTextLine([
        e.id, e.connectionId, e.eventType, e.eventDetails, e.oldStatus, e.newStatus,
        e.requestData, e.responseData, e.errorData, e.latencyMs, e.bytesTransferred,
        e.timestamp, e.createdBy, e.userAgent, e.ipAddress, e.sessionId,
      ]);
    }
    await copyIn(q, `COPY agent_mcp_connection_logs (${INSERT_COLUMNS}) FROM STDIN`, text);
    await q.query('SELECT pg_notify($1, pg_current_xact_id()::text)', [CONNECTION_LOG_CHANNEL]);
    return { count: events.length, includes: () => true };
  }

  /** Newest first, strictly after `cursor` in (timestamp, id) descending order. */
  async listEvents(q: QueryRunner, query: EventQuery, cursor: TimeCursor | undefined, limit: number): Promise<ConnectionLogRow[]> {
    const c = new SqlConditions();
    addEventQuery(c, query);
    if (cursor) c.add((t, i) => `(l.timestamp, l.id) < (${t}::timestamptz, ${i}::uuid)`, cursor.ts, cursor.id);
    const limitRef = c.param(limit);
    return q.query(
      `SELECT ${ROW_COLUMNS} FROM ${FROM_LOGS} ${c.where()}
       ORDER BY l.timestamp DESC, l.id DESC LIMIT ${limitRef}`,
      c.params,
    );
  }

  /**
   * Rows committed after `cursor`, in commit order, below the commit horizon
   * (see CommitOrderStream in @mcp/runtime and commit_horizon() in the migrations).
   */
  async rowsAfterCommitCursor(
    q: QueryRunner,
    query: EventQuery,
    cursor: CommitCursor,
    notBefore: Date,
    limit: number,
  ): Promise<{ rows: ConnectionLogRow[]; horizon: string }> {
    const c = new SqlConditions();
    addEventQuery(c, { ...query, startTime: undefined, endTime: undefined });
    for (const predicate of commitOrderPredicates('l', cursor, (v) => c.param(v))) c.add(() => predicate);
    c.add((t) => `l.timestamp >= ${t}`, notBefore);
    const limitRef = c.param(limit);
    const rows: (ConnectionLogRow & { horizon: string })[] = await q.query(
      `WITH ${COMMIT_ORDER_HORIZON_CTE}
       SELECT ${ROW_COLUMNS}, (SELECT horizon FROM commit_order_horizon)::text AS horizon
       FROM ${FROM_LOGS} ${c.where()}
       ORDER BY l.ingest_xid, l.id LIMIT ${limitRef}`,
      c.params,
    );
    const horizon = rows[0]?.horizon ?? (await q.query('SELECT commit_horizon(pg_current_snapshot())::text AS h'))[0].h;
    return { rows, horizon };
  }
}

export interface AgentLogRow {
  id: string;
  connection_id: string;
  timestamp: Date;
  event_type: string;
  event_details: string | null;
  server_name: string;
  latency_ms: number | null;
  error_data: string | null;
  cursor_ts: string;
}

export interface RecentActivityRow {
  id: string;
  timestamp: Date;
  event_type: string;
  event_details: string | null;
  agent_name: string;
  server_name: string;
  latency_ms: number | null;
  user_email: string;
  cursor_ts: string;
}

export interface AgentRow {
  id: string;
  user_id: string;
  name: string;
  description: string | null;
  is_active: boolean;
  created: boolean;
}

export interface ConnectionRow {
  id: string;
  agent_id: string;
  mcp_server_instance_id: string;
  is_active: boolean;
  status: string | null;
  created: boolean;
}

/**
 * The seed's get_agent_connection_logs() and recent_connection_activity, with
 * the same joins and columns plus the row id, which keyset pagination needs.
 */
export class ActivityRepository {
  async agentExists(q: QueryRunner, agentId: string): Promise<boolean> {
    const rows = await q.query('SELECT 1 FROM agents WHERE id = $1', [agentId]);
    return rows.length > 0;
  }

  async agentConnectionLogs(q: QueryRunner, agentId: string, since: string, cursor: TimeCursor | undefined, limit: number): Promise<AgentLogRow[]> {
    const c = new SqlConditions();
    c.add((p) => `amc.agent_id = ${p}::uuid`, agentId);
    c.add((p) => `acl.timestamp > ${p}::timestamptz`, since);
    if (cursor) c.add((t, i) => `(acl.timestamp, acl.id) < (${t}::timestamptz, ${i}::uuid)`, cursor.ts, cursor.id);
    const limitRef = c.param(limit);
    return q.query(
      `SELECT acl.id, acl.connection_id, acl.timestamp, acl.event_type, acl.event_details,
              ati.instance_name_on_toolbox AS server_name, acl.latency_ms, acl.error_data::text AS error_data,
              ${exactTimestamp('acl.timestamp')} AS cursor_ts
       FROM agent_mcp_connection_logs acl
       JOIN agent_mcp_connections amc ON acl.connection_id = amc.id
       JOIN account_tool_instances ati ON amc.mcp_server_instance_id = ati.id
       ${c.where()}
       ORDER BY acl.timestamp DESC, acl.id DESC LIMIT ${limitRef}`,
      c.params,
    );
  }

  async recentActivity(q: QueryRunner, since: string, cursor: TimeCursor | undefined, limit: number): Promise<RecentActivityRow[]> {
    const c = new SqlConditions();
    c.add((p) => `acl.timestamp > ${p}::timestamptz`, since);
    if (cursor) c.add((t, i) => `(acl.timestamp, acl.id) < (${t}::timestamptz, ${i}::uuid)`, cursor.ts, cursor.id);
    const limitRef = c.param(limit);
    return q.query(
      `SELECT acl.id, acl.timestamp, acl.event_type, acl.event_details, a.name AS agent_name,
              ati.instance_name_on_toolbox AS server_name, acl.latency_ms, u.email AS user_email,
              ${exactTimestamp('acl.timestamp')} AS cursor_ts
       FROM agent_mcp_connection_logs acl
       JOIN agent_mcp_connections amc ON acl.connection_id = amc.id
       JOIN agents a ON amc.agent_id = a.id
       JOIN account_tool_instances ati ON amc.mcp_server_instance_id = ati.id
       JOIN auth.users u ON a.user_id = u.id
       ${c.where()}
       ORDER BY acl.timestamp DESC, acl.id DESC LIMIT ${limitRef}`,
      c.params,
    );
  }

  /** A window start fixed by the first page, so later pages keep the same window. */
  async windowStart(q: QueryRunner, hours: number): Promise<string> {
    const [row] = await q.query(
      `SELECT ${exactTimestamp('now() - make_interval(hours => $1)')} AS since`,
      [hours],
    );
    return row.since;
  }
}

/** Agents and agent <-> server connections, which log rows reference. */
export class RegistryRepository {
  async userExists(q: QueryRunner, userId: string): Promise<boolean> {
    const rows = await q.query('SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL', [userId]);
    return rows.length > 0;
  }

  async upsertAgent(q: QueryRunner, a: Omit<AgentRow, 'created'>): Promise<AgentRow> {
    const [row] = await q.query(
      `INSERT INTO agents (id, user_id, name, description, is_active) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, name = EXCLUDED.name,
         description = EXCLUDED.description, is_active = EXCLUDED.is_active
       RETURNING id, user_id, name, description, is_active, (xmax = 0) AS created`,
      [a.id, a.user_id, a.name, a.description, a.is_active],
    );
    return row;
  }

  async serverExists(q: QueryRunner, serverId: string): Promise<boolean> {
    const rows = await q.query('SELECT 1 FROM mcp_servers WHERE id = $1', [serverId]);
    return rows.length > 0;
  }

  async agentOwner(q: QueryRunner, agentId: string): Promise<string | undefined> {
    const [row] = await q.query('SELECT user_id FROM agents WHERE id = $1', [agentId]);
    return row?.user_id;
  }

  /** Registers a server known so far only by id and name; status-sync owns the rest of the row. */
  async registerServer(q: QueryRunner, serverId: string, name: string, ownerId: string): Promise<void> {
    await q.query(
      `INSERT INTO mcp_servers (id, name, owner_id) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
      [serverId, name, ownerId],
    );
  }

  async upsertConnection(q: QueryRunner, c: Omit<ConnectionRow, 'created'>): Promise<ConnectionRow> {
    const [row] = await q.query(
      `INSERT INTO agent_mcp_connections (id, agent_id, mcp_server_instance_id, is_active, status)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET agent_id = EXCLUDED.agent_id,
         mcp_server_instance_id = EXCLUDED.mcp_server_instance_id,
         is_active = EXCLUDED.is_active, status = EXCLUDED.status
       RETURNING id, agent_id, mcp_server_instance_id, is_active, status, (xmax = 0) AS created`,
      [c.id, c.agent_id, c.mcp_server_instance_id, c.is_active, c.status],
    );
    return row;
  }
}

/** What one insert stored, without a per-event lookup structure in the common all-new case. */
export interface InsertedEvents {
  count: number;
  includes(event: KeyedEvent): boolean;
}

function eventKey(id: string, timestampMs: number): string {
  return `${id.toLowerCase()}@${timestampMs}`;
}

/**
 * COPY … FROM STDIN of `text` on the transaction's connection; resolves once
 * PostgreSQL has confirmed it. pg-copy-streams reports the COPY's end through
 * the query's `callback`, defined on its prototype; as an own property it is
 * also seen (and wrapped) by the pg instrumentation, which ends the COPY's
 * span there instead of leaving it open.
 */
async function copyIn(q: QueryRunner, sql: string, text: string): Promise<void> {
  const client = (await q.connect()) as PoolClient;
  const copy = Object.assign(copyFrom(sql), { callback: () => undefined });
  client.query(copy);
  copy.end(text);
  await once(copy, 'finish');
}

/** `[{"q": request, "s": response, "e": error}, …]` with each payload's JSON text embedded verbatim; null payloads are left out. */
function payloadsJson(events: KeyedEvent[]): string {
  const docs = new Array<string>(events.length);
  for (let i = 0; i < events.length; i++) {
    const { requestData, responseData, errorData } = events[i];
    const members: string[] = [];
    if (requestData !== null) members.push(`"q":${requestData}`);
    if (responseData !== null) members.push(`"s":${responseData}`);
    if (errorData !== null) members.push(`"e":${errorData}`);
    docs[i] = `{${members.join(',')}}`;
  }
  return `[${docs.join(',')}]`;
}
