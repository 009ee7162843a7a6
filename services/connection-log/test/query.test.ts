import * as grpc from '@grpc/grpc-js';
import { createDataSource, checkEntityDrift } from '@mcp/db';
import { connectionlog } from '@mcp/proto';
import { decodeBadRequest } from '@mcp/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionLogEntities } from '../src';
import { createFixture, expectGrpcError, startHarness, type Fixture, type Harness } from './harness';

const { EventType } = connectionlog;
let h: Harness;
let a: Fixture;
let b: Fixture;
const base = Date.now() - 3_600_000; // an hour ago, in today's/yesterday's partitions

beforeAll(async () => {
  h = await startHarness();
  a = await createFixture(h, 'query-a');
  b = await createFixture(h, 'query-b');
  // 40 events per fixture, one per minute, cycling through four types.
  const types = [EventType.EVENT_TYPE_CONNECTED, EventType.EVENT_TYPE_USAGE_RECORDED, EventType.EVENT_TYPE_ERROR, EventType.EVENT_TYPE_DISCONNECTED];
  for (const fx of [a, b]) {
    const events = Array.from({ length: 40 }, (_, i) => ({
      id: crypto.randomUUID(),
      timestamp: new Date(base + i * 60_000),
      connectionId: fx.connectionId,
      eventType: types[i % 4],
      latencyMs: i,
      errorData: i % 4 === 2 ? JSON.stringify({ code: i }) : undefined,
    }));
    await h.call('recordEvents', { events });
  }
});
afterAll(async () => h?.close());

async function listAll(filter: Partial<connectionlog.EventFilter>, pageSize = 7): Promise<connectionlog.ConnectionEvent[]> {
  const out: connectionlog.ConnectionEvent[] = [];
  let pageToken = '';
  do {
    const res = await h.call('listEvents', { filter, pageSize, pageToken });
    out.push(...res.events);
    pageToken = res.nextPageToken;
  } while (pageToken);
  return out;
}

describe('ListEvents', () => {
  it('filters by connection, newest first', async () => {
    const events = await listAll({ connectionIds: [a.connectionId] });
    expect(events).toHaveLength(40);
    expect(events.every((e) => e.connectionId === a.connectionId && e.agentId === a.agentId)).toBe(true);
    const times = events.map((e) => e.timestamp!.getTime());
    expect(times).toEqual([...times].sort((x, y) => y - x));
  });

  it('filters by agent', async () => {
    const events = await listAll({ agentId: b.agentId });
    expect(events).toHaveLength(40);
    expect(new Set(events.map((e) => e.connectionId))).toEqual(new Set([b.connectionId]));
  });

  it('filters by event types and errors only', async () => {
    const usage = await listAll({ eventTypes: [EventType.EVENT_TYPE_USAGE_RECORDED, EventType.EVENT_TYPE_CONNECTED] });
    expect(usage).toHaveLength(40);
    const errors = await listAll({ errorsOnly: true, agentId: a.agentId });
    expect(errors).toHaveLength(10);
    expect(errors.every((e) => e.eventType === EventType.EVENT_TYPE_ERROR && e.errorData)).toBe(true);
    expect(await listAll({ errorsOnly: true, eventTypes: [EventType.EVENT_TYPE_CONNECTED] })).toHaveLength(0);
  });

  it('filters by a half-open time range', async () => {
    const events = await listAll({ connectionIds: [a.connectionId], startTime: new Date(base + 10 * 60_000), endTime: new Date(base + 20 * 60_000) });
    expect(events.map((e) => e.latencyMs)).toEqual([19, 18, 17, 16, 15, 14, 13, 12, 11, 10]);
  });

  it('pages neither skip nor repeat rows while new rows arrive', async () => {
    const expected = (await listAll({ agentId: a.agentId }, 1000)).map((e) => e.id);
    const seen: string[] = [];
    const newer: string[] = [];
    let pageToken = '';
    do {
      const res = await h.call('listEvents', { filter: { agentId: a.agentId }, pageSize: 6, pageToken });
      seen.push(...res.events.map((e) => e.id));
      pageToken = res.nextPageToken;
      // A concurrent writer adds rows newer than the first page: they sort above every cursor.
      const { acks } = await h.call('recordEvents', { events: [{ connectionId: a.connectionId, eventType: EventType.EVENT_TYPE_TESTING }] });
      newer.push(acks[0].id);
    } while (pageToken);
    expect(new Set(seen).size).toBe(seen.length); // nothing repeated
    expect(seen).toEqual(expected); // nothing skipped, same order
    expect(newer.filter((id) => seen.includes(id))).toEqual([]);
    expect(newer.length).toBe(Math.ceil(expected.length / 6));
  });

  it('bounds the page size and rejects bad filters and tokens', async () => {
    const big = await h.call('listEvents', { pageSize: 100_000 });
    expect(big.events.length).toBeLessThanOrEqual(1000);
    const cases: Array<[Partial<connectionlog.ListEventsRequest>, string]> = [
      [{ filter: { connectionIds: ['x'] } as connectionlog.EventFilter }, 'filter.connection_ids[0]'],
      [{ filter: { agentId: '12' } as connectionlog.EventFilter }, 'filter.agent_id'],
      [{ filter: { eventTypes: [77] } as unknown as connectionlog.EventFilter }, 'filter.event_types[0]'],
      [{ filter: { startTime: new Date(2), endTime: new Date(1) } as connectionlog.EventFilter }, 'filter.end_time'],
      [{ pageToken: 'garbage!' }, 'page_token'],
    ];
    for (const [req, field] of cases) {
      const err = await expectGrpcError(h.call('listEvents', req));
      expect(err.code, field).toBe(grpc.status.INVALID_ARGUMENT);
      expect(decodeBadRequest(err.metadata).map((v) => v.field)).toContain(field);
    }
  });

  it('rejects a page token replayed against a different filter', async () => {
    const first = await h.call('listEvents', { filter: { agentId: a.agentId }, pageSize: 5 });
    const err = await expectGrpcError(h.call('listEvents', { filter: { agentId: b.agentId }, pageToken: first.nextPageToken }));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toContain('different request');
  });
});

describe('the seed function and view as RPCs', () => {
  it('GetAgentConnectionLogs returns exactly get_agent_connection_logs(agent, hours), paged', async () => {
    const { rows } = await h.pg.query('SELECT * FROM get_agent_connection_logs($1, 2)', [a.agentId]);
    const got: connectionlog.AgentConnectionLog[] = [];
    let pageToken = '';
    do {
      const res = await h.call('getAgentConnectionLogs', { agentId: a.agentId, hours: 2, pageSize: 9, pageToken });
      got.push(...res.logs);
      pageToken = res.nextPageToken;
    } while (pageToken);
    expect(got.length).toBe(rows.length);
    expect(got.map((g) => [g.timestamp!.getTime(), g.serverName, g.latencyMs ?? null])).toEqual(
      rows.map((r) => [r.timestamp.getTime(), r.server_name, r.latency_ms]),
    );
    expect(got[0].serverName).toBe('query-a-server');
  });

  it('GetAgentConnectionLogs: unknown agent is NOT_FOUND, bad hours INVALID_ARGUMENT', async () => {
    expect((await expectGrpcError(h.call('getAgentConnectionLogs', { agentId: crypto.randomUUID() }))).code).toBe(grpc.status.NOT_FOUND);
    expect((await expectGrpcError(h.call('getAgentConnectionLogs', { agentId: a.agentId, hours: -1 }))).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('GetRecentActivity returns exactly the recent_connection_activity view, paged', async () => {
    const { rows } = await h.pg.query('SELECT * FROM recent_connection_activity');
    const got: connectionlog.RecentActivity[] = [];
    let pageToken = '';
    do {
      const res = await h.call('getRecentActivity', { pageSize: 25, pageToken });
      got.push(...res.activity);
      pageToken = res.nextPageToken;
    } while (pageToken);
    expect(got.length).toBe(rows.length);
    expect(new Set(got.map((g) => `${g.timestamp!.getTime()}|${g.agentName}|${g.serverName}|${g.userEmail}`))).toEqual(
      new Set(rows.map((r) => `${r.timestamp.getTime()}|${r.agent_name}|${r.server_name}|${r.user_email}`)),
    );
  });
});

describe('registry', () => {
  it('upserts agents and connections, reporting whether they were created', async () => {
    const id = crypto.randomUUID();
    const first = await h.call('upsertAgent', { agent: { id, userId: a.userId, name: 'x', isActive: true } });
    const second = await h.call('upsertAgent', { agent: { id, userId: a.userId, name: 'renamed', isActive: false } });
    expect([first.created, second.created]).toEqual([true, false]);
    expect(second.agent).toMatchObject({ id, name: 'renamed', isActive: false });
    // Registry changes are audited in the same transaction, by the caller.
    const { rows } = await h.pg.query(
      `SELECT action_type, user_id, description FROM audit_logs WHERE resource_type = 'agent' AND resource_id = $1 ORDER BY chain_seq`,
      [id],
    );
    const { rows: admins } = await h.pg.query(`SELECT id FROM users WHERE username = 'test-admin'`);
    expect(rows.map((r) => [r.action_type, r.user_id])).toEqual([
      ['registry.agent_create', admins[0].id],
      ['registry.agent_update', admins[0].id],
    ]);
    expect(rows[1].description).toContain('renamed');
  });

  it('refuses unknown references with FAILED_PRECONDITION', async () => {
    const unknownUser = await expectGrpcError(h.call('upsertAgent', { agent: { userId: crypto.randomUUID(), name: 'x' } }));
    expect(unknownUser.code).toBe(grpc.status.FAILED_PRECONDITION);
    const unknownAgent = await expectGrpcError(
      h.call('upsertConnection', { connection: { agentId: crypto.randomUUID(), mcpServerInstanceId: a.serverId } }),
    );
    expect(unknownAgent.code).toBe(grpc.status.FAILED_PRECONDITION);
    const unknownServer = await expectGrpcError(
      h.call('upsertConnection', { connection: { agentId: a.agentId, mcpServerInstanceId: crypto.randomUUID() } }),
    );
    expect(unknownServer.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(unknownServer.details).toContain('server_name');
  });
});

describe('service plumbing', () => {
  it('honours deadlines: a call blocked in the database stops its SQL when the deadline passes', async () => {
    const blocker = new (await import('pg')).Client({ connectionString: h.db.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE agent_mcp_connections IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      const err = await expectGrpcError(
        h.call('recordEvents', { events: [{ connectionId: a.connectionId, eventType: EventType.EVENT_TYPE_TESTING }] }, { deadline: Date.now() + 800 }),
      );
      expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      // The server's statement was cancelled by statement_timeout, not left waiting on the lock.
      await new Promise((r) => setTimeout(r, 700));
      const { rows } = await h.pg.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
      );
      expect(rows[0].n).toBe(0);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
  });

  it('entities agree with the migrated schema (drift check)', async () => {
    const ds = createDataSource({ url: h.db.url, entities: connectionLogEntities, poolSize: 1 });
    await ds.initialize();
    try {
      expect(await checkEntityDrift(ds)).toEqual([]);
    } finally {
      await ds.destroy();
    }
  });
});
