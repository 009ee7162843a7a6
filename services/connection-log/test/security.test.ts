import * as grpc from '@grpc/grpc-js';
import { connectionlog } from '@mcp/proto';
import { createDataSource } from '@mcp/db';
import { decodeRetryDelayMs, issueApiKey, revokeApiKey, startService, waitForServing } from '@mcp/runtime';
import { connectionLogEntities, createConnectionLogService } from '../src';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFixture, expectGrpcError, startHarness, type Fixture, type Harness } from './harness';

const { EventType } = connectionlog;
let h: Harness;
let a: Fixture;
let b: Fixture;
let viewerA: string;
let viewerB: string;

async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - started;
}

/** The repo's config with different authentication settings, in a temporary file. */
function configWith(authentication: Record<string, number>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-config-'));
  const config = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../config/mcp.json'), 'utf8'));
  config.security.authentication = { failure_window_seconds: 3600, identity_cache_ttl_ms: 5000, ...authentication };
  fs.writeFileSync(path.join(dir, 'mcp.json'), JSON.stringify(config));
  return path.join(dir, 'mcp.json');
}

beforeAll(async () => {
  // These tests fail authentication on purpose, all from 127.0.0.1: keep the lockout out of their way.
  h = await startHarness(undefined, { MCP_CONFIG: configWith({ max_failed_attempts: 1000, lockout_seconds: 1 }) });
  a = await createFixture(h, 'sec-a');
  b = await createFixture(h, 'sec-b');
  for (const fx of [a, b]) {
    await h.call('recordEvents', {
      events: Array.from({ length: 5 }, (_, i) => ({ connectionId: fx.connectionId, eventType: i === 0 ? EventType.EVENT_TYPE_ERROR : EventType.EVENT_TYPE_CONNECTED })),
    });
  }
  // Viewers own the fixtures' agents: the fixture users get viewer keys.
  const keyFor = async (userId: string) => {
    await h.pg.query(`INSERT INTO user_roles (user_id, role) VALUES ($1, 'viewer')`, [userId]);
    return (await issueApiKey(h.pg, { userId, name: 'viewer' })).token;
  };
  viewerA = await keyFor(a.userId);
  viewerB = await keyFor(b.userId);
});
afterAll(async () => h?.close());

describe('authentication', () => {
  const list = (token?: string, metadata?: grpc.Metadata) =>
    new Promise<void>((resolve, reject) =>
      h.client.listEvents(connectionlog.ListEventsRequest.fromPartial({}), metadata ?? h.metadata(token), (err) => (err ? reject(err) : resolve())),
    );

  it.each([
    ['no key', () => new grpc.Metadata()],
    ['not a bearer token', () => {
      const m = new grpc.Metadata();
      m.set('authorization', 'Basic dXNlcjpwYXNz');
      return m;
    }],
    ['malformed key', () => undefined, 'mcp_short'],
    ['unknown key', () => undefined, `mcp_aaaaaaaaaaaa_${'A'.repeat(43)}`],
  ] as Array<[string, () => grpc.Metadata | undefined, string?]>)('%s -> UNAUTHENTICATED', async (_name, metadata, token) => {
    const md = metadata();
    const m = md instanceof grpc.Metadata ? md : undefined;
    const err = await expectGrpcError(list(token, m));
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('a known key prefix with the wrong secret is UNAUTHENTICATED', async () => {
    const wrong = viewerA.slice(0, -4) + (viewerA.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    expect((await expectGrpcError(list(wrong))).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('an expired key is UNAUTHENTICATED', async () => {
    const key = await issueApiKey(h.pg, { userId: a.userId, name: 'short-lived', expiresAt: new Date(Date.now() + 400) });
    await list(key.token);
    await new Promise((r) => setTimeout(r, 500));
    expect((await expectGrpcError(list(key.token))).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('a revoked key stops working on the next calls, even though it was cached', async () => {
    const key = await issueApiKey(h.pg, { userId: a.userId, name: 'to-revoke' });
    await list(key.token); // cached now
    await revokeApiKey(h.pg, { id: key.id });
    const delayMs = await eventually(async () => (await list(key.token).then(() => false, () => true)));
    expect(delayMs).toBeLessThan(1_000);
    expect((await expectGrpcError(list(key.token))).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('stores only a hash of each key', async () => {
    const { rows } = await h.pg.query('SELECT key_prefix, key_hash FROM api_keys');
    const stored = JSON.stringify(rows);
    for (const token of [h.adminToken, viewerA, viewerB]) expect(stored).not.toContain(token.slice('mcp_'.length + 12 + 1));
  });
});

describe('row-level scoping', () => {
  const idsOf = (events: connectionlog.ConnectionEvent[]) => new Set(events.map((e) => e.connectionId));

  it('a viewer reads only its own agents’ events, whatever the filter', async () => {
    const all = await h.call('listEvents', { pageSize: 1000 }, { token: viewerA });
    expect(idsOf(all.events)).toEqual(new Set([a.connectionId]));
    const forB = await h.call('listEvents', { filter: { connectionIds: [b.connectionId] } }, { token: viewerA });
    expect(forB.events).toEqual([]);
    const byAgent = await h.call('listEvents', { filter: { agentId: b.agentId } }, { token: viewerA });
    expect(byAgent.events).toEqual([]);
    const errors = await h.call('listEvents', { filter: { errorsOnly: true } }, { token: viewerA });
    expect(idsOf(errors.events)).toEqual(new Set([a.connectionId]));
    const agentLogs = await h.call('getAgentConnectionLogs', { agentId: b.agentId }, { token: viewerA });
    expect(agentLogs.logs).toEqual([]);
    const recent = await h.call('getRecentActivity', { pageSize: 1000 }, { token: viewerA });
    expect(new Set(recent.activity.map((r) => r.agentName))).toEqual(new Set(['sec-a-agent']));
    const theirs = await h.call('listEvents', { pageSize: 1000 }, { token: viewerB });
    expect(idsOf(theirs.events)).toEqual(new Set([b.connectionId]));
  });

  it('a viewer’s tail never carries another user’s events', async () => {
    // Every message, including each tail's first (its starting cursor, no event): once that arrived, the tail is positioned.
    const received: connectionlog.TailEventsResponse[] = [];
    const call = h.client.tailEvents(connectionlog.TailEventsRequest.fromPartial({ filter: { agentId: b.agentId } }), h.metadata(viewerA));
    call.on('data', (m: connectionlog.TailEventsResponse) => received.push(m));
    call.on('error', () => undefined);
    const mine = h.client.tailEvents(connectionlog.TailEventsRequest.fromPartial({}), h.metadata(viewerA));
    const mineReceived: connectionlog.TailEventsResponse[] = [];
    mine.on('data', (m: connectionlog.TailEventsResponse) => mineReceived.push(m));
    mine.on('error', () => undefined);
    await eventually(async () => received.length >= 1 && mineReceived.length >= 1);
    await h.call('recordEvents', { events: [{ connectionId: b.connectionId, eventType: EventType.EVENT_TYPE_TESTING }] });
    await h.call('recordEvents', { events: [{ connectionId: a.connectionId, eventType: EventType.EVENT_TYPE_TESTING }] });
    await eventually(async () => mineReceived.length >= 2);
    await new Promise((r) => setTimeout(r, 300));
    expect(received.filter((m) => m.event)).toEqual([]);
    expect(mineReceived.filter((m) => m.event).map((m) => m.event!.connectionId)).toEqual([a.connectionId]);
    call.cancel();
    mine.cancel();
  });

  it('an access grant widens what a viewer reads, and its expiry narrows it again', async () => {
    await h.pg.query(
      `INSERT INTO access_controls (user_id, mcp_server_id, resource_type, valid_until) VALUES ($1, $2, 'MCP_SERVER', now() + interval '1 second')`,
      [a.userId, b.serverId],
    );
    const widened = await h.call('listEvents', { pageSize: 1000 }, { token: viewerA });
    expect(idsOf(widened.events)).toEqual(new Set([a.connectionId, b.connectionId]));
    await new Promise((r) => setTimeout(r, 1_100));
    const narrowed = await h.call('listEvents', { pageSize: 1000 }, { token: viewerA });
    expect(idsOf(narrowed.events)).toEqual(new Set([a.connectionId]));
  });
});

describe('hostile strings', () => {
  /** SQL and shell metacharacters; nothing the redaction policy masks. */
  const HOSTILE = [
    `'; DROP TABLE users; --`,
    `' OR '1'='1`,
    `"; SELECT pg_sleep(10); --`,
    `$(rm -rf /) \`id\` && echo pwned > /tmp/x | cat`,
    `\\'; \\x27 %s %n {{7*7}} \${HOME}`,
    `Robert'); DELETE FROM agent_mcp_connection_logs WHERE ('1'='1`,
    `1; COPY users TO PROGRAM 'sh -c id'; /* comment`,
  ];

  it('every string field that takes free text is stored and returned literally', async () => {
    for (const [i, hostile] of HOSTILE.entries()) {
      const { agent } = await h.call('upsertAgent', { agent: { userId: a.userId, name: `${hostile} ${i}`, description: hostile, isActive: true } });
      expect(agent).toMatchObject({ name: `${hostile} ${i}`, description: hostile });
      const { connection } = await h.call('upsertConnection', {
        connection: { agentId: agent!.id, mcpServerInstanceId: crypto.randomUUID(), isActive: true, status: hostile },
        serverName: `${hostile} server ${i}`,
      });
      expect(connection!.status).toBe(hostile);
      const json = JSON.stringify({ [hostile]: hostile, list: [hostile] });
      const sent = {
        connectionId: connection!.id,
        eventType: EventType.EVENT_TYPE_STATUS_CHANGE,
        eventDetails: hostile,
        oldStatus: hostile,
        newStatus: hostile,
        requestData: json,
        responseData: json,
        errorData: json,
        userAgent: hostile,
        sessionId: hostile,
      };
      await h.call('recordEvents', { events: [sent] });
      const { events } = await h.call('listEvents', { filter: { connectionIds: [connection!.id] } });
      expect(events).toHaveLength(1);
      const [back] = events;
      for (const field of ['eventDetails', 'oldStatus', 'newStatus', 'userAgent', 'sessionId'] as const) expect(back[field]).toBe(hostile);
      // JSON payloads are stored as jsonb: the same value, in PostgreSQL's spacing.
      for (const field of ['requestData', 'responseData', 'errorData'] as const) expect(JSON.parse(back[field]!)).toEqual(JSON.parse(json));
      const { activity } = await h.call('getRecentActivity', { pageSize: 1000 });
      expect(activity.find((r) => r.id === back.id)).toMatchObject({ eventDetails: hostile, agentName: `${hostile} ${i}`, serverName: `${hostile} server ${i}` });
    }
    const { rows } = await h.pg.query(`SELECT to_regclass('users') IS NOT NULL AS users_exists`);
    expect(rows).toEqual([{ users_exists: true }]);
  });
});

describe('rate limits', () => {
  it('trip with RESOURCE_EXHAUSTED and a retry delay, then recover', async () => {
    const { userId, token } = await h.principal('rate-limited', ['viewer']);
    await h.pg.query(
      `INSERT INTO rate_limits (scope, user_id, endpoint, requests_limit, window_seconds) VALUES ('USER_ENDPOINT', $1, $2, 3, 1)`,
      [userId, '/mcp.connectionlog.v1.ConnectionLogService/ListEvents'],
    );
    await new Promise((r) => setTimeout(r, 200)); // the NOTIFY that refreshes every replica's limits
    let tripped: grpc.ServiceError | undefined;
    for (let i = 0; i < 10 && !tripped; i++) {
      tripped = await h.call('listEvents', {}, { token }).then(() => undefined, (e: grpc.ServiceError) => e);
    }
    expect(tripped?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const delay = decodeRetryDelayMs(tripped!.metadata)!;
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(2_000);
    // Other methods are counted separately.
    await h.call('getRecentActivity', {}, { token });
    await new Promise((r) => setTimeout(r, delay + 50));
    await h.call('listEvents', {}, { token });
  });

  it('hold across replicas: two services on one database share the window', async () => {
    const { userId, token } = await h.principal('rate-limited-twice', ['viewer']);
    await h.pg.query(
      `INSERT INTO rate_limits (scope, user_id, endpoint, requests_limit, window_seconds) VALUES ('USER_ENDPOINT', $1, $2, 4, 60)`,
      [userId, '/mcp.connectionlog.v1.ConnectionLogService/GetRecentActivity'],
    );
    const replica = await startService({
      serviceName: 'connection-log',
      defaultPort: 0,
      env: { DATABASE_URL: h.db.url, GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', LOG_LEVEL: 'silent' },
      createDataSource: (url) => createDataSource({ url, entities: connectionLogEntities, poolSize: 2 }),
      createServices: (deps) => [createConnectionLogService(deps)],
    });
    const other = new connectionlog.ConnectionLogServiceClient(`127.0.0.1:${replica.server.port}`, grpc.credentials.createInsecure());
    try {
      await waitForServing(`127.0.0.1:${replica.server.port}`);
      await new Promise((r) => setTimeout(r, 200)); // the NOTIFY that refreshes both replicas' limits
      const viaReplica = () =>
        new Promise<string>((resolve) =>
          other.getRecentActivity(connectionlog.GetRecentActivityRequest.fromPartial({}), h.metadata(token), (err) =>
            resolve(err ? grpc.status[err.code] : 'OK'),
          ),
        );
      const viaFirst = () => h.call('getRecentActivity', {}, { token }).then(() => 'OK', (e: grpc.ServiceError) => grpc.status[e.code]);
      const outcomes = [];
      for (let i = 0; i < 3; i++) outcomes.push(await viaFirst(), await viaReplica());
      // Four allowed in all, whichever replica answered; then both refuse.
      expect(outcomes).toEqual(['OK', 'OK', 'OK', 'OK', 'RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED']);
    } finally {
      other.close();
      await replica.shutdown('test done');
    }
  });

  it('per address: principals calling from one address share its limit, and it recovers', async () => {
    const [first, second] = [await h.principal('same-address-1', ['viewer']), await h.principal('same-address-2', ['viewer'])];
    const outcome = (token: string) => h.call('listEvents', {}, { token }).then(() => 'OK', (e: grpc.ServiceError) => e);
    // Every call of this file comes from 127.0.0.1.
    await h.pg.query(`INSERT INTO rate_limits (scope, ip_address, requests_limit, window_seconds) VALUES ('IP', '127.0.0.1', 4, 2)`);
    try {
      await new Promise((r) => setTimeout(r, 200)); // the NOTIFY that refreshes the limits
      const outcomes: Array<string | grpc.ServiceError> = [];
      for (let i = 0; i < 3; i++) outcomes.push(await outcome(first.token), await outcome(second.token));
      const codes = outcomes.map((o) => (typeof o === 'string' ? o : grpc.status[o.code]));
      expect(codes).toEqual(['OK', 'OK', 'OK', 'OK', 'RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED']);
      const refused = outcomes[5] as grpc.ServiceError;
      expect(refused.details).toContain('for calls from 127.0.0.1');
      const delay = decodeRetryDelayMs(refused.metadata)!;
      expect(delay).toBeGreaterThan(0);
      expect(delay).toBeLessThanOrEqual(4_000);
      await new Promise((r) => setTimeout(r, delay + 50));
      expect(await outcome(second.token)).toBe('OK');
    } finally {
      await h.pg.query(`DELETE FROM rate_limits WHERE scope = 'IP'`);
    }
  });
});

describe('lockout after repeated authentication failures', () => {
  let locked: Harness;
  beforeAll(async () => {
    locked = await startHarness(undefined, { MCP_CONFIG: configWith({ max_failed_attempts: 5, lockout_seconds: 3 }) });
  });
  afterAll(async () => locked?.close());

  it('trips after 5 failures from one address, is recorded, refuses even a valid key, and recovers', async () => {
    const bogus = `mcp_zzzzzzzzzzzz_${'B'.repeat(43)}`;
    for (let i = 0; i < 5; i++) {
      expect((await expectGrpcError(locked.call('listEvents', {}, { token: bogus }))).code).toBe(grpc.status.UNAUTHENTICATED);
    }
    const refused = await expectGrpcError(locked.call('listEvents', {}));
    expect(refused.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(refused.details).toContain('locked');
    const { rows } = await locked.pg.query(
      `SELECT event_type, count(*)::int AS n FROM security_events GROUP BY event_type ORDER BY event_type`,
    );
    expect(rows).toEqual([
      { event_type: 'account_lockout', n: 1 },
      { event_type: 'failed_login', n: 5 },
    ]);
    // Seed 004's failed-login analytics query finds the burst.
    const burst = await locked.pg.query(
      `SELECT ip_address, COUNT(*) as failed_attempts FROM security_events WHERE event_type = 'failed_login' AND occurred_at >= NOW() - INTERVAL '1 hour' GROUP BY ip_address HAVING COUNT(*) >= 5;`,
    );
    expect(burst.rows).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 3_100));
    await locked.call('listEvents', {});
  });

  it('trips after 5 failures with one key, is recorded, refuses that key alone, and recovers', async () => {
    const owner = await locked.principal('key-lockout', ['viewer']);
    const spare = await issueApiKey(locked.pg, { userId: owner.userId, name: 'spare' });
    const prefix = owner.token.slice('mcp_'.length, 'mcp_'.length + 12);
    const wrongSecret = owner.token.slice(0, -4) + (owner.token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const list = (token: string) => locked.call('listEvents', {}, { token });
    for (let i = 0; i < 5; i++) expect((await expectGrpcError(list(wrongSecret))).code).toBe(grpc.status.UNAUTHENTICATED);
    // The right secret no longer helps: the key is checked before anything else.
    const refused = await expectGrpcError(list(owner.token));
    expect(refused.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(refused.details).toContain('API key locked');
    const failures = await locked.pg.query(
      `SELECT count(*)::int AS n FROM security_events WHERE event_type = 'failed_login' AND indicators->>'key_prefix' = $1`,
      [prefix],
    );
    expect(failures.rows).toEqual([{ n: 5 }]);
    const lockouts = await locked.pg.query(`SELECT description FROM security_events WHERE event_type = 'account_lockout' AND user_id = $1`, [
      owner.userId,
    ]);
    expect(lockouts.rows).toEqual([{ description: `API key ${prefix} locked for 3s after 5 failed authentications` }]);
    // The failures came from 127.0.0.1 too, which locked the address as well. An operator lifts that:
    // the owner's other key works again at once, the locked key still does not.
    await locked.pg.query(`DELETE FROM rate_limits WHERE scope = 'IP'`);
    await eventually(() => list(spare.token).then(() => true, () => false));
    expect((await expectGrpcError(list(owner.token))).details).toContain('API key locked');
    await eventually(() => list(owner.token).then(() => true, () => false), 5_000);
  });
});
