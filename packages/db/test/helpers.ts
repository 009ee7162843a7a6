import { Client, type ClientConfig, type QueryResultRow } from 'pg';

/** A connected pg Client; the caller ends it. */
export async function connect(url: string, extra: Partial<ClientConfig> = {}): Promise<Client> {
  const client = new Client({ connectionString: url, ...extra });
  await client.connect();
  return client;
}

export interface PgErrorLike extends Error {
  code?: string;
  constraint?: string;
  table?: string;
}

/** Awaits a statement that must fail and returns the PostgreSQL error. */
export async function pgError(work: Promise<unknown>): Promise<PgErrorLike> {
  try {
    await work;
  } catch (err) {
    return err as PgErrorLike;
  }
  throw new Error('expected the statement to fail, it succeeded');
}

/** The rows of a query, with parameters. */
export async function rows<T extends QueryResultRow = Record<string, unknown>>(
  c: Client,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  return (await c.query<T>(sql, params)).rows;
}

export async function scalar<T = unknown>(c: Client, sql: string, params: unknown[] = []): Promise<T> {
  const res = await c.query(sql, params);
  if (res.rows.length !== 1) throw new Error(`expected one row, got ${res.rows.length}: ${sql}`);
  return Object.values(res.rows[0])[0] as T;
}

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

/** A Date `ms` milliseconds before now (millisecond precision survives the round trip through timestamptz). */
export function ago(ms: number): Date {
  return new Date(Date.now() - ms);
}

export async function insertUser(c: Client, username: string, roles: string[] = []): Promise<string> {
  const id = await scalar<string>(
    c,
    `INSERT INTO users (username, email, full_name) VALUES ($1, $2, $3) RETURNING id`,
    [username, `${username}@example.com`, username.charAt(0).toUpperCase() + username.slice(1)],
  );
  for (const role of roles) {
    await c.query(`INSERT INTO user_roles (user_id, role) VALUES ($1, $2)`, [id, role]);
  }
  return id;
}

export async function insertEnvironment(c: Client, name: string, type: 'DEVELOPMENT' | 'STAGING' | 'PRODUCTION'): Promise<string> {
  return scalar<string>(c, `INSERT INTO environments (name, environment_type) VALUES ($1, $2) RETURNING id`, [name, type]);
}

export interface ServerFields {
  ownerId?: string | null;
  environmentId?: string | null;
  status?: string;
  isEnabled?: boolean;
  cpuUsage?: string | null;
  memoryUsage?: string | null;
  lastHealthCheck?: Date | null;
  lastActivityAt?: Date | null;
}

export async function insertServer(c: Client, name: string, f: ServerFields = {}): Promise<string> {
  return scalar<string>(
    c,
    `INSERT INTO mcp_servers (name, owner_id, environment_id, status, is_enabled, cpu_usage, memory_usage,
                              last_health_check, last_activity_at, transport, command)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'stdio', $10) RETURNING id`,
    [
      name,
      f.ownerId ?? null,
      f.environmentId ?? null,
      f.status ?? 'RUNNING',
      f.isEnabled ?? true,
      f.cpuUsage ?? null,
      f.memoryUsage ?? null,
      f.lastHealthCheck ?? null,
      f.lastActivityAt ?? null,
      `npx -y @modelcontextprotocol/server-${name}`,
    ],
  );
}

export async function insertAgent(c: Client, userId: string, name: string): Promise<string> {
  return scalar<string>(c, `INSERT INTO agents (user_id, name) VALUES ($1, $2) RETURNING id`, [userId, name]);
}

export async function insertConnection(c: Client, agentId: string, serverId: string, isActive = true): Promise<string> {
  return scalar<string>(
    c,
    `INSERT INTO agent_mcp_connections (agent_id, mcp_server_instance_id, is_active, status)
     VALUES ($1, $2, $3, 'connected') RETURNING id`,
    [agentId, serverId, isActive],
  );
}

export interface ConnectionLogFields {
  eventType?: string;
  eventDetails?: string | null;
  latencyMs?: number | null;
  errorData?: unknown;
  requestData?: unknown;
  createdBy?: string | null;
}

export async function insertConnectionLog(c: Client, connectionId: string, at: Date, f: ConnectionLogFields = {}): Promise<string> {
  return scalar<string>(
    c,
    `INSERT INTO agent_mcp_connection_logs
       (connection_id, event_type, event_details, old_status, new_status, request_data, response_data, error_data,
        latency_ms, bytes_transferred, timestamp, created_by, user_agent, ip_address, session_id)
     VALUES ($1, $2, $3, 'idle', 'connected', $4, $5, $6, $7, 2048, $8, $9, 'mcp-client/1.4', '10.1.2.3', 'sess-42')
     RETURNING id`,
    [
      connectionId,
      f.eventType ?? 'connected',
      f.eventDetails === undefined ? 'handshake completed' : f.eventDetails,
      JSON.stringify(f.requestData ?? { method: 'initialize', params: { protocolVersion: '2025-03-26' } }),
      JSON.stringify({ result: { serverInfo: { name: 'fs', version: '1.0.0' } } }),
      f.errorData === undefined ? null : JSON.stringify(f.errorData),
      f.latencyMs === undefined ? 42 : f.latencyMs,
      at,
      f.createdBy ?? null,
    ],
  );
}

export interface StatusLogFields {
  previous?: unknown;
  current?: unknown;
  source?: string;
  details?: string | null;
  responseTimeMs?: number | null;
}

export async function insertStatusLog(c: Client, serverId: string, at: Date, f: StatusLogFields = {}): Promise<string> {
  return scalar<string>(
    c,
    `INSERT INTO mcp_server_status_logs
       (server_id, previous_status, current_status, source, details, health_check_result, heartbeat_data,
        response_time_ms, uptime_seconds, timestamp, sync_session_id, batch_id)
     VALUES ($1, $2, $3, $4, $5, '{"ok": true}', '{"seq": 7}', $6, 86400, $7, gen_random_uuid(), gen_random_uuid())
     RETURNING id`,
    [
      serverId,
      JSON.stringify(f.previous ?? { state: 'running', health: 'HEALTHY' }),
      JSON.stringify(f.current ?? { state: 'running', health: 'HEALTHY' }),
      f.source ?? 'heartbeat',
      f.details === undefined ? 'heartbeat ok' : f.details,
      f.responseTimeMs === undefined ? 12 : f.responseTimeMs,
      at,
    ],
  );
}

/** The partition (as its table name) a row of a partitioned table is stored in. */
export async function partitionOf(c: Client, table: string, id: string): Promise<string> {
  return scalar<string>(c, `SELECT tableoid::regclass::text FROM ${table} WHERE id = $1`, [id]);
}
