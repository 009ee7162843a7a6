import { randomUUID } from 'node:crypto';
import type { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDatabase } from '../src/testing';
import {
  ago,
  connect,
  DAY,
  HOUR,
  insertAgent,
  insertConnection,
  insertConnectionLog,
  insertServer,
  insertStatusLog,
  insertUser,
  pgError,
  scalar,
} from './helpers';

let db: TestDatabase;
let c: Client;
let userId: string;
let serverId: string;
let agentId: string;
let connectionId: string;

beforeAll(async () => {
  db = await freshDatabase();
  c = await connect(db.url);
  userId = await insertUser(c, 'erin');
  serverId = await insertServer(c, 'filesystem', { ownerId: userId });
  agentId = await insertAgent(c, userId, 'builder');
  connectionId = await insertConnection(c, agentId, serverId);
});

afterAll(async () => {
  await c?.end();
  await db?.drop();
});

interface CheckCase {
  name: string;
  constraint: string;
  /** The statement, run once with `good` (must succeed) and once with `bad` (must fail with 23514). */
  sql: () => string;
  params: (value: unknown) => unknown[];
  good: unknown;
  bad: unknown;
}

const conn = () => connectionId;
const server = () => serverId;
const hash = (ch: string) => ch.repeat(64);

const CASES: CheckCase[] = [
  {
    name: 'connection log event_type outside the seed list',
    constraint: 'agent_mcp_connection_logs_event_type_check',
    sql: () => `INSERT INTO agent_mcp_connection_logs (connection_id, event_type) VALUES ($1, $2)`,
    params: (v) => [conn(), v],
    good: 'usage_recorded',
    bad: 'exploded',
  },
  {
    name: 'connection log event_type in the wrong case',
    constraint: 'agent_mcp_connection_logs_event_type_check',
    sql: () => `INSERT INTO agent_mcp_connection_logs (connection_id, event_type) VALUES ($1, $2)`,
    params: (v) => [conn(), v],
    good: 'connected',
    bad: 'CONNECTED',
  },
  {
    name: 'negative connection latency',
    constraint: 'agent_mcp_connection_logs_latency_ms_check',
    sql: () => `INSERT INTO agent_mcp_connection_logs (connection_id, event_type, latency_ms) VALUES ($1, 'testing', $2)`,
    params: (v) => [conn(), v],
    good: 0,
    bad: -1,
  },
  {
    name: 'negative bytes transferred',
    constraint: 'agent_mcp_connection_logs_bytes_transferred_check',
    sql: () => `INSERT INTO agent_mcp_connection_logs (connection_id, event_type, bytes_transferred) VALUES ($1, 'testing', $2)`,
    params: (v) => [conn(), v],
    good: 0,
    bad: -10,
  },
  {
    name: 'negative latency in a row bound for the default partition',
    constraint: 'agent_mcp_connection_logs_latency_ms_check',
    sql: () =>
      `INSERT INTO agent_mcp_connection_logs (connection_id, event_type, latency_ms, timestamp) VALUES ($1, 'testing', $2, now() - interval '200 days')`,
    params: (v) => [conn(), v],
    good: 5,
    bad: -5,
  },
  {
    name: 'status log source outside the seed list',
    constraint: 'mcp_server_status_logs_source_check',
    sql: () => `INSERT INTO mcp_server_status_logs (server_id, source) VALUES ($1, $2)`,
    params: (v) => [server(), v],
    good: 'dtma',
    bad: 'cron',
  },
  {
    name: 'negative status response time',
    constraint: 'mcp_server_status_logs_response_time_ms_check',
    sql: () => `INSERT INTO mcp_server_status_logs (server_id, source, response_time_ms) VALUES ($1, 'system', $2)`,
    params: (v) => [server(), v],
    good: 0,
    bad: -3,
  },
  {
    name: 'negative uptime',
    constraint: 'mcp_server_status_logs_uptime_seconds_check',
    sql: () => `INSERT INTO mcp_server_status_logs (server_id, source, uptime_seconds) VALUES ($1, 'system', $2)`,
    params: (v) => [server(), v],
    good: 0,
    bad: -1,
  },
  {
    name: 'security event severity',
    constraint: 'security_events_severity_check',
    sql: () => `INSERT INTO security_events (event_type, severity) VALUES ('failed_login', $1)`,
    params: (v) => [v],
    good: 'CRITICAL',
    bad: 'SEVERE',
  },
  {
    name: 'security event status',
    constraint: 'security_events_status_check',
    sql: () => `INSERT INTO security_events (event_type, severity, status) VALUES ('failed_login', 'LOW', $1)`,
    params: (v) => [v],
    good: 'INVESTIGATING',
    bad: 'CLOSED',
  },
  {
    name: 'security event resolved flag must match the status',
    constraint: 'security_events_check',
    sql: () =>
      `INSERT INTO security_events (event_type, severity, status, resolved, resolved_at) VALUES ('failed_login', 'LOW', $1, true, now())`,
    params: (v) => [v],
    good: 'RESOLVED',
    bad: 'OPEN',
  },
  {
    name: 'security event threat score above 100',
    constraint: 'security_events_threat_score_check',
    sql: () => `INSERT INTO security_events (event_type, severity, threat_score) VALUES ('port_scan', 'HIGH', $1)`,
    params: (v) => [v],
    good: '100.00',
    bad: '100.01',
  },
  {
    name: 'security event country code',
    constraint: 'security_events_country_code_check',
    sql: () => `INSERT INTO security_events (event_type, severity, country_code) VALUES ('port_scan', 'HIGH', $1)`,
    params: (v) => [v],
    good: 'NL',
    bad: 'nld',
  },
  {
    name: 'mcp server status',
    constraint: 'mcp_servers_status_check',
    sql: () => `INSERT INTO mcp_servers (name, status) VALUES ('srv-' || gen_random_uuid(), $1)`,
    params: (v) => [v],
    good: 'MAINTENANCE',
    bad: 'BROKEN',
  },
  {
    name: 'mcp server negative cpu usage',
    constraint: 'mcp_servers_cpu_usage_check',
    sql: () => `INSERT INTO mcp_servers (name, cpu_usage) VALUES ('srv-' || gen_random_uuid(), $1)`,
    params: (v) => [v],
    good: '0',
    bad: '-0.01',
  },
  {
    name: 'audit archive checksum that is not 64 lowercase hex digits',
    constraint: 'audit_logs_archive_checksum_check',
    sql: () => `INSERT INTO audit_logs_archive (original_audit_log_id, audit_data, checksum) VALUES (gen_random_uuid(), '{}', $1)`,
    params: (v) => [v],
    good: hash('a'),
    bad: hash('A'),
  },
  {
    name: 'audit archive checksum of the wrong length',
    constraint: 'audit_logs_archive_checksum_check',
    sql: () => `INSERT INTO audit_logs_archive (original_audit_log_id, audit_data, checksum) VALUES (gen_random_uuid(), '{}', $1)`,
    params: (v) => [v],
    good: hash('0'),
    bad: hash('0').slice(1),
  },
  {
    name: 'audit log trace id',
    constraint: 'audit_logs_trace_id_check',
    sql: () => `INSERT INTO audit_logs (action_type, trace_id) VALUES ('tool.call', $1)`,
    params: (v) => [v],
    good: '4bf92f3577b34da6a3ce929d0e0e4736',
    bad: '4bf92f3577b34da6a3ce929d0e0e473',
  },
  {
    name: 'audit log negative duration',
    constraint: 'audit_logs_duration_ms_check',
    sql: () => `INSERT INTO audit_logs (action_type, duration_ms) VALUES ('tool.call', $1)`,
    params: (v) => [v],
    good: 0,
    bad: -1,
  },
  {
    name: 'secret configuration stored in plain text',
    constraint: 'configurations_check',
    sql: () => `INSERT INTO configurations (key, is_secret, value, encrypted_value) VALUES ('api_token', true, $1, '\\x00ff')`,
    params: (v) => [v],
    good: null,
    bad: '"hunter2"',
  },
  {
    name: 'role name',
    constraint: 'roles_name_check',
    sql: () => `INSERT INTO roles (name) VALUES ($1)`,
    params: (v) => [v],
    good: 'release_manager',
    bad: 'Release Manager',
  },
];

describe('CHECK constraints (SQLSTATE 23514)', () => {
  for (const k of CASES) {
    it(`rejects ${k.name}`, async () => {
      await c.query(k.sql(), k.params(k.good)); // the boundary value is accepted
      const err = await pgError(c.query(k.sql(), k.params(k.bad)));
      expect(err.code).toBe('23514');
      expect(err.constraint).toBe(k.constraint);
    });
  }
});

describe('foreign keys', () => {
  it('deleting a connection cascades to its logs, in every partition, and to nothing else', async () => {
    const agent = await insertAgent(c, userId, 'cascade-agent');
    const doomed = await insertConnection(c, agent, serverId);
    const survivor = await insertConnection(c, agent, serverId);
    for (const at of [ago(HOUR), ago(40 * DAY)]) {
      await insertConnectionLog(c, doomed, at);
      await insertConnectionLog(c, survivor, at);
    }
    const count = (id: string) => scalar<number>(c, 'SELECT count(*)::int FROM agent_mcp_connection_logs WHERE connection_id = $1', [id]);
    expect(await count(doomed)).toBe(2);
    await c.query('DELETE FROM agent_mcp_connections WHERE id = $1', [doomed]);
    expect(await count(doomed)).toBe(0);
    expect(await count(survivor)).toBe(2);
  });

  it('deleting an mcp_server cascades to its status logs (and its connections and their logs)', async () => {
    const doomedServer = await insertServer(c, 'doomed-server');
    const otherServer = await insertServer(c, 'other-server');
    const agent = await insertAgent(c, userId, 'cascade-agent-2');
    const doomedConn = await insertConnection(c, agent, doomedServer);
    for (const at of [ago(HOUR), ago(40 * DAY)]) {
      await insertStatusLog(c, doomedServer, at);
      await insertStatusLog(c, otherServer, at);
      await insertConnectionLog(c, doomedConn, at);
    }
    const statusCount = (id: string) => scalar<number>(c, 'SELECT count(*)::int FROM mcp_server_status_logs WHERE server_id = $1', [id]);
    expect(await statusCount(doomedServer)).toBe(2);
    await c.query('DELETE FROM mcp_servers WHERE id = $1', [doomedServer]);
    expect(await statusCount(doomedServer)).toBe(0);
    expect(await statusCount(otherServer)).toBe(2);
    expect(await scalar(c, 'SELECT count(*)::int FROM agent_mcp_connections WHERE id = $1', [doomedConn])).toBe(0);
    expect(await scalar(c, 'SELECT count(*)::int FROM agent_mcp_connection_logs WHERE connection_id = $1', [doomedConn])).toBe(0);
  });

  for (const [where, at] of [
    ['a daily partition', ago(HOUR)],
    ['the default partition', ago(300 * DAY)],
  ] as const) {
    it(`rejects a connection log for an unknown connection (23503), in ${where}`, async () => {
      const err = await pgError(insertConnectionLog(c, randomUUID(), at));
      expect(err.code).toBe('23503');
      expect(err.constraint).toBe('agent_mcp_connection_logs_connection_id_fkey');
    });

    it(`rejects a status log for an unknown server (23503), in ${where}`, async () => {
      const err = await pgError(insertStatusLog(c, randomUUID(), at));
      expect(err.code).toBe('23503');
      expect(err.constraint).toBe('mcp_server_status_logs_server_id_fkey');
    });
  }

  it('rejects a created_by that is not a user (23503)', async () => {
    const err = await pgError(insertConnectionLog(c, connectionId, ago(HOUR), { createdBy: randomUUID() }));
    expect(err.code).toBe('23503');
    expect(err.constraint).toBe('agent_mcp_connection_logs_created_by_fkey');
    await insertConnectionLog(c, connectionId, ago(HOUR), { createdBy: userId });
  });
});

describe('idx_config_unique_server_key', () => {
  const insertConfig = (serverIdArg: string, key: string, status: string, version = 1) =>
    c.query(
      `INSERT INTO configurations (key, value, scope, mcp_server_id, status, version) VALUES ($1, $2, 'SERVER', $3, $4, $5) RETURNING id`,
      [key, JSON.stringify({ max_connections: version * 10 }), serverIdArg, status, version],
    );

  it('allows one ACTIVE config per server and key; DRAFTs and other servers are free', async () => {
    const s1 = await insertServer(c, 'config-server-1');
    const s2 = await insertServer(c, 'config-server-2');
    const active = (await insertConfig(s1, 'pool', 'ACTIVE', 1)).rows[0].id as string;

    const err = await pgError(insertConfig(s1, 'pool', 'ACTIVE', 2));
    expect(err.code).toBe('23505');
    expect(err.constraint).toBe('idx_config_unique_server_key');

    await insertConfig(s1, 'pool', 'DRAFT', 2);
    await insertConfig(s1, 'pool', 'DRAFT', 3); // several drafts may coexist
    await insertConfig(s1, 'pool', 'PENDING_APPROVAL', 4);
    await insertConfig(s1, 'timeout', 'ACTIVE', 1); // another key
    await insertConfig(s2, 'pool', 'ACTIVE', 1); // another server

    // promoting a draft while the old version is still ACTIVE is rejected …
    const draft = (await insertConfig(s1, 'pool', 'DRAFT', 5)).rows[0].id as string;
    const promote = await pgError(c.query(`UPDATE configurations SET status = 'ACTIVE' WHERE id = $1`, [draft]));
    expect(promote.code).toBe('23505');
    // … and succeeds once the old one is archived
    await c.query(`UPDATE configurations SET status = 'ARCHIVED' WHERE id = $1`, [active]);
    await c.query(`UPDATE configurations SET status = 'ACTIVE' WHERE id = $1`, [draft]);
    expect(
      await scalar(c, `SELECT count(*)::int FROM configurations WHERE mcp_server_id = $1 AND key = 'pool' AND status = 'ACTIVE'`, [s1]),
    ).toBe(1);
  });
});
