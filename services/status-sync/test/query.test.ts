import * as grpc from '@grpc/grpc-js';
import { checkEntityDrift, createDataSource } from '@mcp/db';
import { statussync } from '@mcp/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusSyncEntities } from '../src';
import { createServer, expectGrpcError, startHarness, status, type Harness } from './harness';

const { StatusSource } = statussync;
let h: Harness;
let a: { ownerId: string; serverId: string };
let b: { ownerId: string; serverId: string };
let viewer: { userId: string; token: string };

beforeAll(async () => {
  h = await startHarness();
  a = await createServer(h, 'query-a');
  b = await createServer(h, 'query-b');
  const states = ['STARTING', 'RUNNING', 'ERROR', 'RUNNING'];
  const healths = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DEGRADED'];
  for (let i = 0; i < 23; i++) {
    await h.call('reportStatus', {
      report: { serverId: a.serverId, currentStatus: status(states[i % 4], healths[i % 4]), source: StatusSource.STATUS_SOURCE_DTMA, responseTimeMs: i, details: `a-${i}` },
    });
  }
  for (let i = 0; i < 6; i++) await h.call('heartbeat', { serverId: b.serverId, health: i % 2 ? statussync.ServerHealth.SERVER_HEALTH_HEALTHY : statussync.ServerHealth.SERVER_HEALTH_DEGRADED });
  // A row older than 2 hours but inside the 7-day view window.
  await h.pg.query(
    `INSERT INTO mcp_server_status_logs (server_id, previous_status, current_status, source, timestamp)
     VALUES ($1, '{"state":"PENDING","health":"UNKNOWN"}', '{"state":"STARTING","health":"UNKNOWN"}', 'manual', now() - interval '3 hours')`,
    [a.serverId],
  );
  // The viewer's agent connects to server A only (seed 000's status-log policy).
  viewer = await h.principal('query-viewer', ['viewer']);
  await h.pg.query(
    `WITH ag AS (INSERT INTO agents (user_id, name) VALUES ($1, 'viewer-agent') RETURNING id)
     INSERT INTO agent_mcp_connections (agent_id, mcp_server_instance_id, is_active) SELECT id, $2, true FROM ag`,
    [viewer.userId, a.serverId],
  );
});
afterAll(async () => h?.close());

async function pages<T>(fetch: (pageToken: string) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
  const out: T[] = [];
  let pageToken = '';
  do {
    const { items, next } = await fetch(pageToken);
    out.push(...items);
    pageToken = next;
  } while (pageToken);
  return out;
}

const history = (serverId: string, hours: number, token?: string) =>
  pages((pageToken) =>
    h.call('getServerStatusHistory', { serverId, hours, pageSize: 7, pageToken }, { token }).then((r) => ({ items: r.entries, next: r.nextPageToken })),
  );

describe('GetServerStatusHistory', () => {
  it('returns exactly get_server_status_history(server, hours), paged', async () => {
    for (const hours of [2, 24]) {
      const { rows } = await h.pg.query('SELECT * FROM get_server_status_history($1, $2)', [a.serverId, hours]);
      const got = await history(a.serverId, hours);
      expect(rows.length).toBe(hours === 2 ? 23 : 24);
      expect(got.map((g) => [g.timestamp!.getTime(), g.previousState ?? null, g.currentState ?? null, g.details ?? null, g.responseTimeMs ?? null])).toEqual(
        rows.map((r) => [r.timestamp.getTime(), r.previous_state, r.current_state, r.details, r.response_time_ms]),
      );
    }
  });

  it('reads through row-level security: a viewer sees servers its agents connect to, and granted ones', async () => {
    expect(await history(a.serverId, 24, viewer.token)).toHaveLength(24);
    expect(await history(b.serverId, 24, viewer.token)).toHaveLength(0);
    await h.pg.query(`INSERT INTO access_controls (user_id, mcp_server_id, resource_type) VALUES ($1, $2, 'MCP_SERVER')`, [viewer.userId, b.serverId]);
    expect((await history(b.serverId, 24, viewer.token)).length).toBeGreaterThan(0);
    await h.pg.query(`UPDATE access_controls SET revoked_at = now() WHERE user_id = $1`, [viewer.userId]);
  });

  it('unknown server is NOT_FOUND; bad hours or a foreign page token INVALID_ARGUMENT', async () => {
    expect((await expectGrpcError(h.call('getServerStatusHistory', { serverId: crypto.randomUUID() }))).code).toBe(grpc.status.NOT_FOUND);
    expect((await expectGrpcError(h.call('getServerStatusHistory', { serverId: a.serverId, hours: -1 }))).code).toBe(grpc.status.INVALID_ARGUMENT);
    const first = await h.call('getServerStatusHistory', { serverId: a.serverId, pageSize: 2 });
    const err = await expectGrpcError(h.call('getServerStatusHistory', { serverId: b.serverId, pageToken: first.nextPageToken }));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
  });
});

describe('ListServerHealthHistory', () => {
  const list = (token?: string) =>
    pages((pageToken) => h.call('listServerHealthHistory', { pageSize: 5, pageToken }, { token }).then((r) => ({ items: r.entries, next: r.nextPageToken })));

  it('returns exactly the server_health_history view, paged', async () => {
    const { rows } = await h.pg.query('SELECT * FROM server_health_history');
    const got = await list();
    const key = (t: Date, name: string, prev: unknown, cur: unknown, source: string, ms: unknown, details: unknown) =>
      JSON.stringify([t.getTime(), name, prev ?? null, cur ?? null, source, ms ?? null, details ?? null]);
    expect(got.map((g) => key(g.timestamp!, g.serverName, g.previousHealth, g.currentHealth, statussync.statusSourceToJSON(g.source), g.responseTimeMs, g.details))).toEqual(
      rows.map((r) => key(r.timestamp, r.server_name, r.previous_health, r.current_health, `STATUS_SOURCE_${r.source.toUpperCase()}`, r.response_time_ms, r.details)),
    );
    expect(got.length).toBe(23 + 1 + 6);
  });

  it('a viewer sees only the rows of servers its agents connect to', async () => {
    const got = await list(viewer.token);
    expect(got).toHaveLength(24);
    expect(new Set(got.map((g) => g.serverId))).toEqual(new Set([a.serverId]));
  });
});

describe('GetServerDashboard', () => {
  it("returns exactly seed 004's dashboard query for an owner, paged, never-active servers first", async () => {
    const owner = a.ownerId;
    const dash: string[] = [];
    for (let i = 0; i < 5; i++) dash.push((await h.call('upsertServer', { server: { name: `dash-${i}`, ownerId: owner, isEnabled: i !== 3 } })).server!.id);
    // Metrics and a health check for two of them (a beat with a health is one), through the service.
    const { SERVER_HEALTH_HEALTHY: HEALTHY } = statussync.ServerHealth;
    await h.call('heartbeat', { serverId: dash[0], health: HEALTHY, cpuUsage: 12.5, memoryUsage: 512.25 });
    await h.call('heartbeatBatch', { heartbeats: [{ serverId: dash[2], health: HEALTHY, cpuUsage: 80, memoryUsage: 1024 }] });
    await new Promise((r) => setTimeout(r, 50)); // the health checks are measurably in the past
    const queriedAt = Date.now();
    const { rows } = await h.pg.query(
      `SELECT s.name, s.status, s.cpu_usage, s.memory_usage,
              EXTRACT(EPOCH FROM (NOW() - s.last_health_check)) / 60 as minutes_since_health_check
       FROM mcp_servers s WHERE s.is_enabled = true AND s.owner_id = $1 ORDER BY s.last_activity_at DESC, s.id DESC`,
      [owner],
    );
    const got = await pages((pageToken) =>
      h.call('getServerDashboard', { ownerId: owner, pageSize: 2, pageToken }).then((r) => ({ items: r.servers, next: r.nextPageToken })),
    );
    const elapsedMinutes = (Date.now() + 1 - queriedAt) / 60_000; // + 1: Date.now() drops the sub-millisecond part
    const number = (value: string | null) => (value === null ? null : Number(value));
    expect(got.map((g) => [g.name, statussync.serverStateToJSON(g.state), g.cpuUsage ?? null, g.memoryUsage ?? null])).toEqual(
      rows.map((r) => [r.name, `SERVER_STATE_${r.status}`, number(r.cpu_usage), number(r.memory_usage)]),
    );
    expect(got).toHaveLength(5); // query-a-server and four enabled dash-* servers
    expect(got.filter((g) => g.cpuUsage !== undefined).map((g) => [g.name, g.cpuUsage, g.memoryUsage])).toEqual([
      ['dash-2', 80, 1024],
      ['dash-0', 12.5, 512.25],
    ]);
    // The seed query's NOW() is its own: the service's, read a little later, is at most that much further on.
    for (const [i, g] of got.entries()) {
      const seed = number(rows[i].minutes_since_health_check);
      if (seed === null) {
        expect(g.minutesSinceHealthCheck, g.name).toBeUndefined();
        continue;
      }
      expect(seed, g.name).toBeGreaterThan(0);
      expect(g.minutesSinceHealthCheck! - seed, g.name).toBeGreaterThanOrEqual(0);
      expect(g.minutesSinceHealthCheck! - seed, g.name).toBeLessThanOrEqual(elapsedMinutes);
    }
    expect(got.filter((g) => g.minutesSinceHealthCheck !== undefined).map((g) => g.name)).toEqual(['dash-2', 'dash-0']);
    expect(got[got.length - 1]).toMatchObject({ name: 'query-a-server', state: statussync.ServerState.SERVER_STATE_ERROR }); // its last report (i = 22)
    expect(got[got.length - 1].minutesSinceHealthCheck).toBeUndefined(); // reports without a health check result
  });

  it("lets a user read their own dashboard, only admins another owner's", async () => {
    const own = await h.call('getServerDashboard', {}, { token: viewer.token });
    expect(own.servers).toEqual([]);
    const err = await expectGrpcError(h.call('getServerDashboard', { ownerId: a.ownerId }, { token: viewer.token }));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await expectGrpcError(h.call('getServerDashboard', { ownerId: crypto.randomUUID() }))).code).toBe(grpc.status.NOT_FOUND);
  });
});

describe('schema', () => {
  it('entities agree with the migrated schema (drift check)', async () => {
    const ds = createDataSource({ url: h.db.url, entities: statusSyncEntities, poolSize: 1 });
    await ds.initialize();
    try {
      expect(await checkEntityDrift(ds)).toEqual([]);
    } finally {
      await ds.destroy();
    }
  });
});
