/**
 * Who calls, and what their events are about: principals with real API keys,
 * and the users, agents, MCP servers and connections log rows reference.
 */
import { provisionPrincipal } from '@mcp/runtime';
import type { Queryable } from './database';

export interface Principal {
  userId: string;
  token: string;
}

export interface Principals {
  /** The `service` role: what an agent gateway or a sync agent writes with. */
  writer: Principal;
  /** Reads everything (tails and watches see every row; row-level security would hide other owners' rows). */
  admin: Principal;
  /** Runs retention and places legal holds. */
  operator: Principal;
}

/**
 * Provisions the three principals. The writer's and the admin's rate limits
 * are lifted (a per-user rate_limits row that never blocks), as an operator
 * does for an ingest gateway: the scenarios measure the services, not the
 * default quota of 6 000 calls a minute per method.
 */
export async function provisionPrincipals(db: Queryable, prefix = 'reliability'): Promise<Principals> {
  const writer = await provisionPrincipal(db, { username: `${prefix}-writer`, roles: ['service'] });
  const admin = await provisionPrincipal(db, { username: `${prefix}-admin`, roles: ['admin'] });
  const operator = await provisionPrincipal(db, { username: `${prefix}-operator`, roles: ['retention_operator'] });
  for (const p of [writer, admin]) {
    await db.query(
      `INSERT INTO rate_limits (scope, user_id, requests_limit, window_seconds, block_on_exceed) VALUES ('USER', $1, 1000000000, 60, false)`,
      [p.userId],
    );
  }
  const pick = (p: { userId: string; token: string }) => ({ userId: p.userId, token: p.token });
  return { writer: pick(writer), admin: pick(admin), operator: pick(operator) };
}

export interface ConnectionFixture {
  userId: string;
  agentId: string;
  serverId: string;
  connectionId: string;
}

/** `count` users, each with an agent, an MCP server and a connection between them. */
export async function createConnections(db: Queryable, name: string, count = 1): Promise<ConnectionFixture[]> {
  const { rows } = await db.query<ConnectionFixture>(
    `WITH n AS (SELECT i, $1 || '-' || i AS name FROM generate_series(1, $2) AS i),
          u AS (INSERT INTO users (username, email) SELECT name, name || '@example.test' FROM n ORDER BY i RETURNING id, username),
          a AS (INSERT INTO agents (user_id, name) SELECT id, username || '-agent' FROM u RETURNING id, user_id, name),
          s AS (INSERT INTO mcp_servers (name, owner_id) SELECT username || '-server', id FROM u RETURNING id, owner_id),
          c AS (INSERT INTO agent_mcp_connections (agent_id, mcp_server_instance_id)
                SELECT a.id, s.id FROM a JOIN s ON s.owner_id = a.user_id RETURNING id, agent_id, mcp_server_instance_id)
     SELECT a.user_id AS "userId", a.id AS "agentId", c.mcp_server_instance_id AS "serverId", c.id AS "connectionId"
       FROM c JOIN a ON a.id = c.agent_id ORDER BY a.name`,
    [name, count],
  );
  return rows;
}

/** `count` enabled MCP servers of one new owner; returns their ids. */
export async function createServers(db: Queryable, name: string, count: number): Promise<{ ownerId: string; serverIds: string[] }> {
  const { rows: users } = await db.query<{ id: string }>(`INSERT INTO users (username, email) VALUES ($1, $1 || '@example.test') RETURNING id`, [name]);
  const ownerId = users[0].id;
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO mcp_servers (name, owner_id, is_enabled) SELECT $1 || '-server-' || i, $2, true FROM generate_series(1, $3) AS i RETURNING id`,
    [name, ownerId, count],
  );
  return { ownerId, serverIds: rows.map((r) => r.id) };
}
