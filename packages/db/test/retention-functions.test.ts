import type { Client } from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
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
  partitionOf,
  pgError,
  rows,
  scalar,
} from './helpers';

let db: TestDatabase;
let c: Client;
let connectionId: string;
let serverId: string;
let userId: string;

beforeAll(async () => {
  db = await freshDatabase();
  c = await connect(db.url);
  // interval arithmetic ('90 days') follows the session time zone; UTC has no DST, so a day is 24 h
  await c.query(`SET TIME ZONE 'UTC'`);
  userId = await insertUser(c, 'carol');
  serverId = await insertServer(c, 'filesystem', { ownerId: userId });
  const agentId = await insertAgent(c, userId, 'ops-agent');
  connectionId = await insertConnection(c, agentId, serverId);
});

afterAll(async () => {
  await c?.end();
  await db?.drop();
});

beforeEach(async () => {
  await c.query('TRUNCATE agent_mcp_connection_logs, mcp_server_status_logs, agent_mcp_connection_logs_archive, mcp_server_status_logs_archive, system_logs');
});

const ids = async (table: string) => (await rows<{ id: string }>(c, `SELECT id FROM ${table} ORDER BY id`)).map((r) => r.id);
const systemLogs = () =>
  rows<{ operation: string; details: string; metadata: unknown }>(c, `SELECT operation, details, metadata FROM system_logs ORDER BY timestamp, id`);

describe('cleanup_agent_mcp_connection_logs', () => {
  it('deletes exactly the rows older than the retention period, returns the count, logs the run', async () => {
    const doomed = [
      await insertConnectionLog(c, connectionId, ago(100 * DAY)),
      await insertConnectionLog(c, connectionId, ago(90 * DAY + 2 * HOUR)),
    ];
    const kept = [
      await insertConnectionLog(c, connectionId, ago(90 * DAY - 2 * HOUR)),
      await insertConnectionLog(c, connectionId, ago(89 * DAY)),
      await insertConnectionLog(c, connectionId, ago(30 * DAY)),
      // Now, not an hour ago: the migration made daily partitions from its own
      // day on, so just after midnight UTC an hour ago has none.
      await insertConnectionLog(c, connectionId, ago(0)),
    ];
    // rows that old have no daily partition: they sit in the default one
    expect(await partitionOf(c, 'agent_mcp_connection_logs', doomed[0])).toBe('agent_mcp_connection_logs_default');
    expect(await partitionOf(c, 'agent_mcp_connection_logs', kept[3])).toMatch(/^agent_mcp_connection_logs_p\d{8}$/);

    expect(await scalar(c, 'SELECT cleanup_agent_mcp_connection_logs(90)')).toBe(2);
    expect(await ids('agent_mcp_connection_logs')).toEqual([...kept].sort());
    expect(await systemLogs()).toEqual([
      { operation: 'log_cleanup', details: 'Cleaned up 2 old agent connection logs (retention: 90 days)', metadata: {} },
    ]);

    // nothing left to do: 0, and logged as such
    expect(await scalar(c, 'SELECT cleanup_agent_mcp_connection_logs(90)')).toBe(0);
    expect((await systemLogs())[1]).toEqual({
      operation: 'log_cleanup',
      details: 'Cleaned up 0 old agent connection logs (retention: 90 days)',
      metadata: {},
    });
    expect(await ids('agent_mcp_connection_logs')).toEqual([...kept].sort());
  });

  it('defaults to 90 days', async () => {
    const old = await insertConnectionLog(c, connectionId, ago(91 * DAY));
    const young = await insertConnectionLog(c, connectionId, ago(89 * DAY));
    expect(await scalar(c, 'SELECT cleanup_agent_mcp_connection_logs()')).toBe(1);
    expect(await ids('agent_mcp_connection_logs')).toEqual([young]);
    expect(await ids('agent_mcp_connection_logs')).not.toContain(old);
    expect((await systemLogs())[0].details).toBe('Cleaned up 1 old agent connection logs (retention: 90 days)');
  });

  it('a shorter retention reaches into the daily partitions', async () => {
    await insertConnectionLog(c, connectionId, ago(3 * DAY));
    const young = await insertConnectionLog(c, connectionId, ago(HOUR));
    expect(await scalar(c, 'SELECT cleanup_agent_mcp_connection_logs($1::int)', [1])).toBe(1);
    expect(await ids('agent_mcp_connection_logs')).toEqual([young]);
    expect((await systemLogs())[0].details).toBe('Cleaned up 1 old agent connection logs (retention: 1 days)');
  });

  for (const bad of [0, -5, null]) {
    it(`retention_days ${bad} raises 22023 and deletes nothing`, async () => {
      const all = [await insertConnectionLog(c, connectionId, ago(100 * DAY)), await insertConnectionLog(c, connectionId, ago(HOUR))].sort();
      const err = await pgError(c.query('SELECT cleanup_agent_mcp_connection_logs($1::int)', [bad]));
      expect(err.code).toBe('22023');
      expect(err.message).toBe(`retention_days must be at least 1, got ${bad === null ? '<NULL>' : bad}`);
      expect(await ids('agent_mcp_connection_logs')).toEqual(all);
      expect(await systemLogs()).toEqual([]);
    });
  }
});

describe('cleanup_mcp_server_status_logs', () => {
  it('deletes exactly the rows older than the retention period, returns the count, logs the run', async () => {
    const doomed = [
      await insertStatusLog(c, serverId, ago(100 * DAY)),
      await insertStatusLog(c, serverId, ago(31 * DAY)),
      await insertStatusLog(c, serverId, ago(30 * DAY + 2 * HOUR)),
    ];
    const kept = [
      await insertStatusLog(c, serverId, ago(30 * DAY - 2 * HOUR)),
      await insertStatusLog(c, serverId, ago(29 * DAY)),
      await insertStatusLog(c, serverId, ago(HOUR)),
    ];
    expect(await partitionOf(c, 'mcp_server_status_logs', doomed[1])).toBe('mcp_server_status_logs_default');

    expect(await scalar(c, 'SELECT cleanup_mcp_server_status_logs(30)')).toBe(3);
    expect(await ids('mcp_server_status_logs')).toEqual([...kept].sort());
    expect(await systemLogs()).toEqual([
      { operation: 'log_cleanup', details: 'Cleaned up 3 old server status logs (retention: 30 days)', metadata: {} },
    ]);
  });

  it('defaults to 30 days', async () => {
    await insertStatusLog(c, serverId, ago(31 * DAY));
    const young = await insertStatusLog(c, serverId, ago(29 * DAY));
    expect(await scalar(c, 'SELECT cleanup_mcp_server_status_logs()')).toBe(1);
    expect(await ids('mcp_server_status_logs')).toEqual([young]);
    expect((await systemLogs())[0].details).toBe('Cleaned up 1 old server status logs (retention: 30 days)');
  });

  for (const bad of [0, -1, null]) {
    it(`retention_days ${bad} raises 22023 and deletes nothing`, async () => {
      const all = [await insertStatusLog(c, serverId, ago(100 * DAY)), await insertStatusLog(c, serverId, ago(HOUR))].sort();
      const err = await pgError(c.query('SELECT cleanup_mcp_server_status_logs($1::int)', [bad]));
      expect(err.code).toBe('22023');
      expect(await ids('mcp_server_status_logs')).toEqual(all);
      expect(await systemLogs()).toEqual([]);
    });
  }
});

describe('archive_old_logs', () => {
  const snapshot = async (table: string, idList: string[]) =>
    (
      await rows<{ id: string; doc: Record<string, unknown> }>(
        c,
        `SELECT id, to_jsonb(t.*) AS doc FROM ${table} t WHERE id = ANY($1::uuid[]) ORDER BY id`,
        [idList],
      )
    ).map((r) => r.doc);

  it('moves exactly the >1 year connection logs and >6 months status logs, unchanged, and returns the counts', async () => {
    const oldConn = [
      await insertConnectionLog(c, connectionId, ago(400 * DAY), { eventType: 'error', errorData: { code: 'ECONNRESET' }, createdBy: userId }),
      await insertConnectionLog(c, connectionId, ago(366 * DAY), { requestData: { method: 'tools/list', params: {} } }),
    ];
    const youngConn = [await insertConnectionLog(c, connectionId, ago(364 * DAY)), await insertConnectionLog(c, connectionId, ago(HOUR))];
    const oldStatus = [
      await insertStatusLog(c, serverId, ago(200 * DAY), { source: 'dtma', details: 'redeployed' }),
      await insertStatusLog(c, serverId, ago(190 * DAY)),
    ];
    const youngStatus = [await insertStatusLog(c, serverId, ago(170 * DAY)), await insertStatusLog(c, serverId, ago(HOUR))];

    const connBefore = await snapshot('agent_mcp_connection_logs', oldConn);
    const statusBefore = await snapshot('mcp_server_status_logs', oldStatus);
    expect(connBefore).toHaveLength(2);
    expect(statusBefore).toHaveLength(2);

    const res = await c.query('SELECT * FROM archive_old_logs()');
    expect(res.fields.map((f) => f.name)).toEqual(['connection_logs_archived', 'status_logs_archived']);
    expect(res.rows).toEqual([{ connection_logs_archived: 2, status_logs_archived: 2 }]);

    expect(await ids('agent_mcp_connection_logs')).toEqual([...youngConn].sort());
    expect(await ids('mcp_server_status_logs')).toEqual([...youngStatus].sort());
    expect(await ids('agent_mcp_connection_logs_archive')).toEqual([...oldConn].sort());
    expect(await ids('mcp_server_status_logs_archive')).toEqual([...oldStatus].sort());
    // every column, ingest_xid and id included, is carried over as it was
    expect(await snapshot('agent_mcp_connection_logs_archive', oldConn)).toEqual(connBefore);
    expect(await snapshot('mcp_server_status_logs_archive', oldStatus)).toEqual(statusBefore);

    // a second run has nothing to move
    expect((await c.query('SELECT * FROM archive_old_logs()')).rows).toEqual([{ connection_logs_archived: 0, status_logs_archived: 0 }]);
    expect(await ids('agent_mcp_connection_logs_archive')).toEqual([...oldConn].sort());
  });

  it('archived rows outlive their connection and server (the archives carry no foreign keys)', async () => {
    const user = await insertUser(c, `dave_${Date.now()}`);
    const server = await insertServer(c, `tmp-${Date.now()}`, { ownerId: user });
    const agent = await insertAgent(c, user, 'short-lived');
    const conn = await insertConnection(c, agent, server);
    const log = await insertConnectionLog(c, conn, ago(400 * DAY));
    const status = await insertStatusLog(c, server, ago(200 * DAY));
    expect((await c.query('SELECT * FROM archive_old_logs()')).rows).toEqual([{ connection_logs_archived: 1, status_logs_archived: 1 }]);
    await c.query('DELETE FROM mcp_servers WHERE id = $1', [server]);
    expect(await ids('agent_mcp_connection_logs_archive')).toEqual([log]);
    expect(await ids('mcp_server_status_logs_archive')).toEqual([status]);
  });
});
