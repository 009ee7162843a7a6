import type { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDatabase } from '../src/testing';
import {
  ago,
  connect,
  HOUR,
  insertAgent,
  insertConnection,
  insertConnectionLog,
  insertServer,
  insertStatusLog,
  insertUser,
  pgError,
  rows,
} from './helpers';

interface Tenant {
  name: string;
  userId: string;
  agentId: string;
  serverId: string;
  connectionId: string;
  connectionLogs: string[];
  statusLogs: string[];
}

let db: TestDatabase;
let admin: Client; // superuser: fixtures, and the connection that SETs ROLE mcp_app
let A: Tenant;
let B: Tenant;
let adminUser: string;
let nobody: string;

async function tenant(name: string): Promise<Tenant> {
  const userId = await insertUser(admin, name, ['viewer']);
  const serverId = await insertServer(admin, `${name}-server`, { ownerId: userId });
  const agentId = await insertAgent(admin, userId, `${name}-agent`);
  const connectionId = await insertConnection(admin, agentId, serverId);
  const connectionLogs = [
    await insertConnectionLog(admin, connectionId, ago(HOUR), { eventDetails: `${name} connected` }),
    await insertConnectionLog(admin, connectionId, ago(2 * HOUR), { eventType: 'error', errorData: { tenant: name } }),
  ];
  const statusLogs = [
    await insertStatusLog(admin, serverId, ago(HOUR), { details: `${name} heartbeat` }),
    await insertStatusLog(admin, serverId, ago(3 * HOUR), { source: 'dtma' }),
  ];
  return { name, userId, agentId, serverId, connectionId, connectionLogs, statusLogs };
}

beforeAll(async () => {
  db = await freshDatabase();
  admin = await connect(db.url);
  expect((await rows(admin, 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user'))[0]).toEqual({ rolsuper: true });
  A = await tenant('anna');
  B = await tenant('ben');
  adminUser = await insertUser(admin, 'root_admin', ['admin']);
  nobody = await insertUser(admin, 'nobody', ['viewer']);
});

afterAll(async () => {
  await admin?.end();
  await db?.drop();
});

/**
 * Runs `work` the way the services read user-scoped data: a transaction,
 * SET LOCAL ROLE mcp_app, and the acting user as a transaction-local setting.
 */
async function as<T>(userId: string | null, work: (c: Client) => Promise<T>): Promise<T> {
  const c = await connect(db.url);
  try {
    await c.query('BEGIN');
    await c.query('SET LOCAL ROLE mcp_app');
    if (userId !== null) await c.query(`SELECT set_config('app.current_user_id', $1, true)`, [userId]);
    const result = await work(c);
    await c.query('COMMIT');
    return result;
  } finally {
    await c.end();
  }
}

const sorted = (xs: string[]) => [...xs].sort();
const ids = async (c: Client, sql: string, params: unknown[] = []) => sorted((await rows<{ id: string }>(c, sql, params)).map((r) => r.id));

interface Visible {
  connectionLogs: string[];
  connectionLogsOf: Record<string, string[]>; // WHERE connection_id = …
  activityAgents: string[]; // recent_connection_activity.agent_name
  agentLogs: Record<string, number>; // get_agent_connection_logs(agent) row count
  statusLogs: string[];
  statusLogsOf: Record<string, string[]>;
  healthServers: string[]; // server_health_history.server_name
  serverHistory: Record<string, number>; // get_server_status_history(server) row count
  count: number;
}

async function visible(userId: string | null): Promise<Visible> {
  return as(userId, async (c) => {
    const v: Visible = {
      connectionLogs: await ids(c, 'SELECT id FROM agent_mcp_connection_logs'),
      connectionLogsOf: {},
      activityAgents: sorted((await rows<{ agent_name: string }>(c, 'SELECT agent_name FROM recent_connection_activity')).map((r) => r.agent_name)),
      agentLogs: {},
      statusLogs: await ids(c, 'SELECT id FROM mcp_server_status_logs'),
      statusLogsOf: {},
      healthServers: sorted((await rows<{ server_name: string }>(c, 'SELECT server_name FROM server_health_history')).map((r) => r.server_name)),
      serverHistory: {},
      count: Number((await rows<{ n: string }>(c, 'SELECT count(*) AS n FROM agent_mcp_connection_logs'))[0].n),
    };
    for (const t of [A, B]) {
      v.connectionLogsOf[t.name] = await ids(c, 'SELECT id FROM agent_mcp_connection_logs WHERE connection_id = $1', [t.connectionId]);
      v.agentLogs[t.name] = (await rows(c, 'SELECT * FROM get_agent_connection_logs($1, $2)', [t.agentId, 24])).length;
      v.statusLogsOf[t.name] = await ids(c, 'SELECT id FROM mcp_server_status_logs WHERE server_id = $1', [t.serverId]);
      v.serverHistory[t.name] = (await rows(c, 'SELECT * FROM get_server_status_history($1, $2)', [t.serverId, 24])).length;
    }
    return v;
  });
}

function only(t: Tenant | null, both = false): Visible {
  const owners = both ? [A, B] : t ? [t] : [];
  const has = (x: Tenant) => owners.includes(x);
  return {
    connectionLogs: sorted(owners.flatMap((o) => o.connectionLogs)),
    connectionLogsOf: { anna: has(A) ? sorted(A.connectionLogs) : [], ben: has(B) ? sorted(B.connectionLogs) : [] },
    activityAgents: sorted(owners.flatMap((o) => [`${o.name}-agent`, `${o.name}-agent`])),
    agentLogs: { anna: has(A) ? 2 : 0, ben: has(B) ? 2 : 0 },
    statusLogs: sorted(owners.flatMap((o) => o.statusLogs)),
    statusLogsOf: { anna: has(A) ? sorted(A.statusLogs) : [], ben: has(B) ? sorted(B.statusLogs) : [] },
    healthServers: sorted(owners.flatMap((o) => [`${o.name}-server`, `${o.name}-server`])),
    serverHistory: { anna: has(A) ? 2 : 0, ben: has(B) ? 2 : 0 },
    count: owners.length * 2,
  };
}

describe('row level security as mcp_app', () => {
  it('the superuser itself sees everything (RLS applies to mcp_app, not to the owner)', async () => {
    expect(await ids(admin, 'SELECT id FROM agent_mcp_connection_logs')).toEqual(sorted([...A.connectionLogs, ...B.connectionLogs]));
  });

  it("A sees only A's connection logs and status logs, by every query shape", async () => {
    expect(await visible(A.userId)).toEqual(only(A));
  });

  it("B sees only B's connection logs and status logs, by every query shape", async () => {
    expect(await visible(B.userId)).toEqual(only(B));
  });

  it("a user with the 'admin' role in user_roles sees both", async () => {
    expect(await visible(adminUser)).toEqual(only(null, true));
  });

  it('a user without agents sees nothing', async () => {
    expect(await visible(nobody)).toEqual(only(null));
  });

  it('no acting user (or an empty one) sees nothing', async () => {
    expect(await visible(null)).toEqual(only(null));
    expect(await visible('')).toEqual(only(null));
  });

  it('the acting user is transaction-local: the next transaction on the same connection sees nothing', async () => {
    const c = await connect(db.url);
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL ROLE mcp_app');
      await c.query(`SELECT set_config('app.current_user_id', $1, true)`, [A.userId]);
      expect(await ids(c, 'SELECT id FROM agent_mcp_connection_logs')).toEqual(sorted(A.connectionLogs));
      await c.query('COMMIT');
      await c.query('BEGIN');
      await c.query('SET LOCAL ROLE mcp_app');
      expect(await ids(c, 'SELECT id FROM agent_mcp_connection_logs')).toEqual([]);
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
  });

  it("status logs need an ACTIVE connection: deactivating A's connection hides that server's status logs from A", async () => {
    await admin.query('UPDATE agent_mcp_connections SET is_active = false WHERE id = $1', [A.connectionId]);
    try {
      const v = await visible(A.userId);
      expect(v.statusLogs).toEqual([]);
      expect(v.statusLogsOf).toEqual({ anna: [], ben: [] });
      expect(v.healthServers).toEqual([]);
      expect(v.serverHistory).toEqual({ anna: 0, ben: 0 });
      // the connection logs policy has no such condition
      expect(v.connectionLogs).toEqual(sorted(A.connectionLogs));
      // the admin still sees them
      expect((await visible(adminUser)).statusLogs).toEqual(sorted([...A.statusLogs, ...B.statusLogs]));
    } finally {
      await admin.query('UPDATE agent_mcp_connections SET is_active = true WHERE id = $1', [A.connectionId]);
    }
    expect((await visible(A.userId)).statusLogs).toEqual(sorted(A.statusLogs));
  });

  it('INSERT is allowed (WITH CHECK (true)), even for rows the writer cannot read back', async () => {
    await as(A.userId, async (c) => {
      await c.query(
        `INSERT INTO agent_mcp_connection_logs (connection_id, event_type, event_details) VALUES ($1, 'testing', 'written by A for B')`,
        [B.connectionId],
      );
      await c.query(`INSERT INTO mcp_server_status_logs (server_id, source, details) VALUES ($1, 'system', 'written by A for B')`, [B.serverId]);
      expect((await rows(c, `SELECT id FROM agent_mcp_connection_logs WHERE event_details = 'written by A for B'`)).length).toBe(0);
    });
    await as(null, (c) =>
      c.query(`INSERT INTO agent_mcp_connection_logs (connection_id, event_type, event_details) VALUES ($1, 'testing', 'system write')`, [
        A.connectionId,
      ]),
    );
    const written = await rows<{ connection_id: string; event_details: string }>(
      admin,
      `SELECT connection_id, event_details FROM agent_mcp_connection_logs WHERE event_details IN ('written by A for B', 'system write') ORDER BY 2`,
    );
    expect(written).toEqual([
      { connection_id: A.connectionId, event_details: 'system write' },
      { connection_id: B.connectionId, event_details: 'written by A for B' },
    ]);
    expect(
      (await as(B.userId, (c) => rows(c, `SELECT id FROM mcp_server_status_logs WHERE details = 'written by A for B'`))).length,
    ).toBe(1);
  });

  it('mcp_app cannot UPDATE or DELETE logs, nor read a partition directly (42501)', async () => {
    for (const sql of [
      `UPDATE agent_mcp_connection_logs SET event_details = 'tampered'`,
      `DELETE FROM agent_mcp_connection_logs`,
      `DELETE FROM mcp_server_status_logs`,
      `SELECT * FROM agent_mcp_connection_logs_default`,
      `SELECT * FROM agent_mcp_connection_logs_archive`,
    ]) {
      const err = await pgError(as(A.userId, (c) => c.query(sql)));
      expect(err.code, sql).toBe('42501');
    }
    expect((await rows(admin, `SELECT id FROM agent_mcp_connection_logs WHERE event_details = 'tampered'`)).length).toBe(0);
  });
});
