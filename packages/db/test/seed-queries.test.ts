import { createHash } from 'node:crypto';
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
  insertEnvironment,
  insertServer,
  insertStatusLog,
  insertUser,
  pgError,
  rows,
  scalar,
} from './helpers';

// ---------------------------------------------------------------------------
// Seed 004's example queries, copied verbatim (comments and trailing blanks included).

const SEED_TIME_RANGE_AUDIT_SUMMARY = `-- Efficient audit log queries with covering indexes
SELECT action_type, COUNT(*), AVG(duration_ms)
FROM audit_logs 
WHERE created_at >= NOW() - INTERVAL '24 hours'
  AND user_id = $1
GROUP BY action_type
ORDER BY COUNT(*) DESC;
`;

const SEED_FAILED_LOGINS = `-- Real-time threat detection
SELECT ip_address, COUNT(*) as failed_attempts
FROM security_events 
WHERE event_type = 'failed_login' 
  AND occurred_at >= NOW() - INTERVAL '1 hour'
GROUP BY ip_address
HAVING COUNT(*) >= 5;
`;

const SEED_SERVER_DASHBOARD = `-- Server performance dashboard
SELECT s.name, s.status, s.cpu_usage, s.memory_usage,
       EXTRACT(EPOCH FROM (NOW() - s.last_health_check)) / 60 as minutes_since_health_check
FROM mcp_servers s
WHERE s.is_enabled = true
  AND s.owner_id = $1
ORDER BY s.last_activity_at DESC;
`;

const SEED_ARCHIVE_INSERT = `-- Automated data lifecycle management
-- Archive audit logs older than 90 days
INSERT INTO audit_logs_archive (original_audit_log_id, audit_data, checksum, archive_reason)
SELECT id, row_to_json(audit_logs.*), encode(sha256(row_to_json(audit_logs.*)::text::bytea), 'hex'), 'retention_policy'
FROM audit_logs 
WHERE created_at < NOW() - INTERVAL '90 days';
`;

const SEED_LEGAL_HOLD_UPDATE = `-- Legal hold prevention
UPDATE audit_logs_archive 
SET retention_until = NULL 
WHERE legal_hold = true;
`;

const SEED_PARTITION_EXAMPLE = `-- Example: Add partitioning for large audit tables
CREATE TABLE audit_logs_y2025m01 PARTITION OF audit_logs
FOR VALUES FROM ('2025-01-01') TO ('2025-02-01');
`;

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const fieldNames = (res: { fields: { name: string }[] }) => res.fields.map((f) => f.name);

let db: TestDatabase;
let c: Client;
let alice: string;
let bob: string;

beforeAll(async () => {
  db = await freshDatabase();
  c = await connect(db.url);
  await c.query(`SET TIME ZONE 'UTC'`);
  alice = await insertUser(c, 'alice', ['auditor']);
  bob = await insertUser(c, 'bob', ['viewer']);
});

afterAll(async () => {
  await c?.end();
  await db?.drop();
});

async function insertAudit(
  userId: string | null,
  actionType: string,
  createdAt: Date,
  durationMs: number | null,
  extra: { description?: string; requestData?: unknown; success?: boolean } = {},
): Promise<string> {
  return scalar<string>(
    c,
    `INSERT INTO audit_logs (created_at, user_id, action_type, resource_type, resource_id, description, request_data,
                             response_data, status_code, duration_ms, success, ip_address, user_agent, session_id, trace_id)
     VALUES ($1, $2, $3, 'mcp_server', 'srv-1', $4, $5, '{"ok": true}', 200, $6, $7, '192.0.2.10', 'admin-console/2.3',
             'sess-7', '4bf92f3577b34da6a3ce929d0e0e4736')
     RETURNING id`,
    [
      createdAt,
      userId,
      actionType,
      extra.description ?? `${actionType} by console`,
      JSON.stringify(extra.requestData ?? { server: 'filesystem', dry_run: false }),
      durationMs,
      extra.success ?? true,
    ],
  );
}

describe('seed 004: time-range audit summary', () => {
  beforeAll(async () => {
    for (const d of [100, 200, 300]) await insertAudit(alice, 'server.start', ago(2 * HOUR + d), d);
    for (const d of [50, 70]) await insertAudit(alice, 'config.update', ago(5 * HOUR), d);
    await insertAudit(alice, 'tool.call', ago(23 * HOUR), 15);
    await insertAudit(alice, 'server.start', ago(2 * DAY), 9_999); // outside 24 h
    await insertAudit(bob, 'server.start', ago(HOUR), 1_000); // another user
    await insertAudit(bob, 'config.update', ago(HOUR), 1_000);
  });

  it('counts and averages per action type for $1, most frequent first', async () => {
    const res = await c.query(SEED_TIME_RANGE_AUDIT_SUMMARY, [alice]);
    expect(fieldNames(res)).toEqual(['action_type', 'count', 'avg']);
    expect(res.rows.map((r) => [r.action_type, Number(r.count), Number(r.avg)])).toEqual([
      ['server.start', 3, 200],
      ['config.update', 2, 60],
      ['tool.call', 1, 15],
    ]);
    const forBob = await c.query(SEED_TIME_RANGE_AUDIT_SUMMARY, [bob]);
    expect(forBob.rows.map((r) => [r.action_type, Number(r.count), Number(r.avg)]).sort()).toEqual([
      ['config.update', 1, 1000],
      ['server.start', 1, 1000],
    ]);
  });
});

describe('seed 004: failed-login analytics', () => {
  beforeAll(async () => {
    const event = (ip: string, type: string, at: Date) =>
      c.query(
        `INSERT INTO security_events (occurred_at, event_type, severity, source_service, ip_address, description, country_code)
         VALUES ($1, $2, 'MEDIUM', 'auth-gateway', $3, $4, 'DE')`,
        [at, type, ip, `${type} from ${ip}`],
      );
    for (let i = 0; i < 6; i++) await event('10.0.0.5', 'failed_login', ago((i + 1) * 60_000));
    for (let i = 0; i < 5; i++) await event('10.0.0.6', 'failed_login', ago((i + 1) * 5 * 60_000));
    for (let i = 0; i < 4; i++) await event('10.0.0.7', 'failed_login', ago((i + 1) * 60_000)); // below threshold
    for (let i = 0; i < 3; i++) await event('10.0.0.5', 'failed_login', ago(2 * HOUR + i * 60_000)); // too old
    for (let i = 0; i < 9; i++) await event('10.0.0.8', 'successful_login', ago((i + 1) * 60_000)); // other type
    for (let i = 0; i < 2; i++) await event('10.0.0.7', 'failed_login', ago(90 * 60_000)); // 10.0.0.7 total 6, but 2 too old
  });

  it('lists IPs with at least 5 failed logins in the last hour', async () => {
    const res = await c.query(SEED_FAILED_LOGINS);
    expect(fieldNames(res)).toEqual(['ip_address', 'failed_attempts']);
    const got = res.rows.map((r) => [r.ip_address, Number(r.failed_attempts)]).sort();
    expect(got).toEqual([
      ['10.0.0.5', 6],
      ['10.0.0.6', 5],
    ]);
  });
});

describe('seed 004: server performance dashboard', () => {
  let servers: Record<string, string>;
  beforeAll(async () => {
    const prod = await insertEnvironment(c, 'production', 'PRODUCTION');
    servers = {
      filesystem: await insertServer(c, 'filesystem', { ownerId: alice, environmentId: prod, cpuUsage: '12.50', memoryUsage: '256.00', lastActivityAt: ago(60_000) }),
      github: await insertServer(c, 'github', { ownerId: alice, environmentId: prod, cpuUsage: '40.25', memoryUsage: '512.50', lastActivityAt: ago(5 * 60_000) }),
      sqlite: await insertServer(c, 'sqlite', { ownerId: alice, status: 'PENDING' }),
      retired: await insertServer(c, 'retired-tool', { ownerId: alice, isEnabled: false, status: 'STOPPED', lastActivityAt: ago(30_000) }),
      slack: await insertServer(c, 'slack', { ownerId: bob, cpuUsage: '1.00', memoryUsage: '64.00', lastActivityAt: ago(10_000) }),
    };
  });

  it("lists the owner's enabled servers, minutes since the last health check, most recently active first", async () => {
    await c.query('BEGIN'); // one transaction: NOW() is the same in the UPDATEs and in the query
    try {
      await c.query(`UPDATE mcp_servers SET last_health_check = now() - interval '10 minutes' WHERE id = $1`, [servers.filesystem]);
      await c.query(`UPDATE mcp_servers SET last_health_check = now() - interval '90 seconds' WHERE id = $1`, [servers.github]);
      await c.query(`UPDATE mcp_servers SET last_health_check = now() - interval '1 minute' WHERE id = $1`, [servers.retired]);
      const res = await c.query(SEED_SERVER_DASHBOARD, [alice]);
      expect(fieldNames(res)).toEqual(['name', 'status', 'cpu_usage', 'memory_usage', 'minutes_since_health_check']);
      expect(
        res.rows.map((r) => ({ ...r, minutes_since_health_check: r.minutes_since_health_check === null ? null : Number(r.minutes_since_health_check) })),
      ).toEqual([
        // ORDER BY … DESC puts NULLs first: a server that was never active leads the list
        { name: 'sqlite', status: 'PENDING', cpu_usage: null, memory_usage: null, minutes_since_health_check: null },
        { name: 'filesystem', status: 'RUNNING', cpu_usage: '12.50', memory_usage: '256.00', minutes_since_health_check: 10 },
        { name: 'github', status: 'RUNNING', cpu_usage: '40.25', memory_usage: '512.50', minutes_since_health_check: 1.5 },
      ]);
    } finally {
      await c.query('COMMIT');
    }
  });
});

describe('seed 004: archive INSERT with sha256 checksum, legal hold UPDATE', () => {
  let old: { id: string; days: number }[];
  let recent: string;

  beforeAll(async () => {
    await c.query('DELETE FROM audit_logs');
    old = [];
    for (const days of [91, 120, 400]) {
      const id = await insertAudit(alice, 'user.login', ago(days * DAY), 35, {
        description: `Login von Zürich — ${days} Tage alt`,
        requestData: { mfa: 'totp', attempts: [1, 2], nested: { ok: true, ratio: 0.25 } },
        success: days !== 120,
      });
      old.push({ id, days });
    }
    recent = await insertAudit(alice, 'user.login', ago(89 * DAY), 35);
  });

  it('archives exactly the rows older than 90 days; its checksum is sha256 of the text as ::bytea reads it (deviation 13)', async () => {
    const live = new Map<string, string>();
    for (const { id } of old) {
      live.set(id, await scalar<string>(c, `SELECT row_to_json(a.*)::text FROM audit_logs a WHERE id = $1`, [id]));
    }

    const res = await c.query(SEED_ARCHIVE_INSERT);
    expect(res.rowCount).toBe(3);

    const archived = await rows<{
      original_audit_log_id: string;
      audit_data: string;
      checksum: string;
      archive_reason: string;
      sql_check: string;
      utf8_check: string;
    }>(
      c,
      `SELECT original_audit_log_id, audit_data::text AS audit_data, checksum, archive_reason,
              encode(sha256(audit_data::text::bytea), 'hex') AS sql_check,
              encode(sha256(convert_to(audit_data::text, 'UTF8')), 'hex') AS utf8_check
         FROM audit_logs_archive ORDER BY original_audit_log_id`,
    );
    expect(archived.map((a) => a.original_audit_log_id).sort()).toEqual(old.map((o) => o.id).sort());
    expect(archived.map((a) => a.original_audit_log_id)).not.toContain(recent);
    for (const a of archived) {
      expect(a.archive_reason).toBe('retention_policy');
      // json (not jsonb) keeps the text byte for byte: the archive holds exactly what was hashed
      expect(a.audit_data).toBe(live.get(a.original_audit_log_id));
      // The seed's expression is reproducible in SQL, but it is not a hash of the text whenever the
      // JSON holds a backslash — as every audit row does since the hash chain's bytea columns
      // (row_to_json writes them as "\\x…"). The services hash convert_to(text, 'UTF8') instead.
      expect(a.sql_check).toBe(a.checksum);
      expect(a.audit_data).toContain('\\\\x');
      expect(a.checksum).not.toBe(sha256(a.audit_data));
      expect(a.utf8_check).toBe(sha256(a.audit_data));
      const doc = JSON.parse(a.audit_data);
      expect(doc.id).toBe(a.original_audit_log_id);
      expect(doc.user_id).toBe(alice);
      expect(doc.request_data).toEqual({ mfa: 'totp', attempts: [1, 2], nested: { ok: true, ratio: 0.25 } });
      expect(doc.description).toMatch(/^Login von Zürich — \d+ Tage alt$/);
    }
  });

  it('legal hold: clears retention_until of exactly the held rows', async () => {
    await c.query(`UPDATE audit_logs_archive SET retention_until = now() + interval '7 years'`);
    const held = old.find((o) => o.days === 400)!.id;
    await c.query(`UPDATE audit_logs_archive SET legal_hold = true, legal_hold_reason = 'litigation 2026-17' WHERE original_audit_log_id = $1`, [held]);

    const res = await c.query(SEED_LEGAL_HOLD_UPDATE);
    expect(res.rowCount).toBe(1);
    const after = await rows<{ id: string; cleared: boolean }>(
      c,
      `SELECT original_audit_log_id AS id, retention_until IS NULL AS cleared FROM audit_logs_archive`,
    );
    expect(after).toHaveLength(3);
    for (const a of after) expect(a.cleared).toBe(a.id === held);
  });

  it("deviation: the seed's ::text::bytea breaks on JSON escapes; convert_to(…, 'UTF8') does not", async () => {
    await c.query('BEGIN');
    try {
      await c.query('DELETE FROM audit_logs_archive');
      // a double quote in any text column becomes \" in the JSON text: invalid bytea escape
      await insertAudit(alice, 'user.login', ago(100 * DAY), 5, { description: 'user typed "admin" as password' });
      await c.query('SAVEPOINT s');
      const err = await pgError(c.query(SEED_ARCHIVE_INSERT));
      expect(err.code).toBe('22P02');
      expect(err.message).toContain('bytea');
      await c.query('ROLLBACK TO SAVEPOINT s');
      await c.query(`DELETE FROM audit_logs WHERE description LIKE '%"admin"%'`);

      // a backslash becomes \\ in the JSON text, which bytea reads as one backslash: wrong checksum
      const id = await insertAudit(alice, 'user.login', ago(100 * DAY), 5, { requestData: { path: 'C:\\mcp\\servers' } });
      await c.query(SEED_ARCHIVE_INSERT);
      const a = await rows<{ audit_data: string; checksum: string }>(
        c,
        `SELECT audit_data::text AS audit_data, checksum FROM audit_logs_archive WHERE original_audit_log_id = $1`,
        [id],
      );
      expect(a[0].audit_data).toContain('C:\\\\mcp');
      expect(a[0].checksum).not.toBe(sha256(a[0].audit_data));

      // the corrected expression hashes the UTF-8 bytes of the text
      const fixed = await scalar<string>(
        c,
        `SELECT encode(sha256(convert_to(row_to_json(audit_logs.*)::text, 'UTF8')), 'hex') FROM audit_logs WHERE id = $1`,
        [id],
      );
      expect(fixed).toBe(sha256(a[0].audit_data));
    } finally {
      await c.query('ROLLBACK');
    }
  });
});

describe('seed 004: monthly partitions', () => {
  const monthName = async (offset: number) =>
    scalar<string>(c, `SELECT 'audit_logs_' || to_char((date_trunc('month', now() AT TIME ZONE 'UTC') + $1 * interval '1 month'), '"y"YYYY"m"MM')`, [offset]);
  const partitions = async () =>
    (await rows<{ p: string }>(c, `SELECT inhrelid::regclass::text AS p FROM pg_inherits WHERE inhparent = 'audit_logs'::regclass ORDER BY 1`)).map((r) => r.p);

  it('SELECT create_monthly_partitions() twice: current and next month exist, nothing else changes', async () => {
    const before = await partitions();
    const first = await c.query('SELECT create_monthly_partitions()');
    const second = await c.query('SELECT create_monthly_partitions()');
    expect(first.rows).toEqual([{ create_monthly_partitions: '' }]);
    expect(second.rows).toEqual([{ create_monthly_partitions: '' }]);
    const after = await partitions();
    expect(after).toEqual(before);
    expect(after).toContain(await monthName(0));
    expect(after).toContain(await monthName(1));
    expect(after).toContain('audit_logs_default');
  });

  it('creates the UTC current and next month whatever the session time zone', async () => {
    const next = await monthName(1);
    const before = await partitions();
    await c.query('BEGIN');
    try {
      await c.query(`DROP TABLE ${next}`);
      await c.query(`SET LOCAL TIME ZONE 'Asia/Tokyo'`);
      await c.query('SELECT create_monthly_partitions()');
      await c.query(`SET LOCAL TIME ZONE 'UTC'`);
      expect(await partitions()).toEqual(before);
      const bound = await scalar<string>(c, `SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE oid = $1::regclass`, [next]);
      const [y, m] = next.replace('audit_logs_y', '').split('m').map(Number);
      const lower = `${y}-${String(m).padStart(2, '0')}-01`;
      const upper = m === 12 ? `${y + 1}-01-01` : `${y}-${String(m + 1).padStart(2, '0')}-01`;
      expect(bound).toBe(`FOR VALUES FROM ('${lower} 00:00:00+00') TO ('${upper} 00:00:00+00')`);
    } finally {
      await c.query('ROLLBACK');
    }
  });

  it("the seed's example partition DDL runs verbatim and ensure_partition recognises it", async () => {
    await c.query(SEED_PARTITION_EXAMPLE);
    expect(await scalar(c, `SELECT ensure_partition('audit_logs', '2025-01-15T12:00:00Z')`)).toBe('audit_logs_y2025m01');
    const id = await insertAudit(alice, 'legacy.import', new Date('2025-01-20T08:00:00Z'), 1);
    expect(await scalar(c, `SELECT tableoid::regclass::text FROM audit_logs WHERE id = $1`, [id])).toBe('audit_logs_y2025m01');
  });
});

// ---------------------------------------------------------------------------
// Seed 000's views and helper functions.

describe('seed 000: views and helper functions', () => {
  const t = {
    l1: ago(1 * HOUR),
    l2: ago(2 * HOUR),
    l3: ago(3 * HOUR),
    l4: ago(30 * HOUR),
    s1: ago(1 * HOUR),
    s2: ago(3 * DAY),
    s3: ago(8 * DAY),
    s4: ago(2 * HOUR),
  };
  let research: string;
  let fsServer: string;
  let slackServer: string;

  beforeAll(async () => {
    const dev = await insertEnvironment(c, 'development', 'DEVELOPMENT');
    fsServer = await insertServer(c, 'fs-dev', { ownerId: alice, environmentId: dev });
    const ghServer = await insertServer(c, 'github-dev', { ownerId: alice, environmentId: dev });
    slackServer = await insertServer(c, 'slack-dev', { ownerId: bob, environmentId: dev });
    research = await insertAgent(c, alice, 'research-agent');
    const support = await insertAgent(c, bob, 'support-agent');
    const rf = await insertConnection(c, research, fsServer);
    const rg = await insertConnection(c, research, ghServer);
    const ss = await insertConnection(c, support, slackServer);

    await insertConnectionLog(c, rf, t.l1, { eventType: 'connected', eventDetails: 'handshake completed', latencyMs: 120 });
    await insertConnectionLog(c, rg, t.l2, {
      eventType: 'error',
      eventDetails: 'tools/call failed',
      latencyMs: 3000,
      errorData: { code: -32000, message: 'rate limited', retry_after_s: 30 },
    });
    await insertConnectionLog(c, ss, t.l3, { eventType: 'usage_recorded', eventDetails: '12 tool calls', latencyMs: 15 });
    await insertConnectionLog(c, rf, t.l4, { eventType: 'disconnected', eventDetails: 'idle timeout', latencyMs: null });

    await insertStatusLog(c, fsServer, t.s1, {
      previous: { state: 'running', health: 'HEALTHY' },
      current: { state: 'degraded', health: 'DEGRADED' },
      source: 'heartbeat',
      details: 'p95 latency above threshold',
      responseTimeMs: 250,
    });
    await insertStatusLog(c, fsServer, t.s2, {
      previous: { state: 'starting', health: 'UNKNOWN' },
      current: { state: 'running', health: 'HEALTHY' },
      source: 'dtma',
      details: 'deployed v1.4.2',
      responseTimeMs: 40,
    });
    await insertStatusLog(c, fsServer, t.s3, {
      previous: { state: 'stopped', health: 'UNKNOWN' },
      current: { state: 'starting', health: 'UNKNOWN' },
      source: 'system',
      details: 'scheduled start',
      responseTimeMs: null,
    });
    await insertStatusLog(c, slackServer, t.s4, {
      previous: { state: 'running', health: 'HEALTHY' },
      current: { state: 'stopped', health: 'UNHEALTHY' },
      source: 'manual',
      details: 'stopped by operator',
      responseTimeMs: 8,
    });
  });

  it('recent_connection_activity: the last 24 h of events, newest first, with the seed columns', async () => {
    const res = await c.query('SELECT * FROM recent_connection_activity');
    expect(fieldNames(res)).toEqual(['timestamp', 'event_type', 'event_details', 'agent_name', 'server_name', 'latency_ms', 'user_email']);
    expect(res.rows).toEqual([
      { timestamp: t.l1, event_type: 'connected', event_details: 'handshake completed', agent_name: 'research-agent', server_name: 'fs-dev', latency_ms: 120, user_email: 'alice@example.com' },
      { timestamp: t.l2, event_type: 'error', event_details: 'tools/call failed', agent_name: 'research-agent', server_name: 'github-dev', latency_ms: 3000, user_email: 'alice@example.com' },
      { timestamp: t.l3, event_type: 'usage_recorded', event_details: '12 tool calls', agent_name: 'support-agent', server_name: 'slack-dev', latency_ms: 15, user_email: 'bob@example.com' },
    ]);
  });

  it('server_health_history: the last 7 days of status changes, newest first, with the seed columns', async () => {
    const res = await c.query('SELECT * FROM server_health_history');
    expect(fieldNames(res)).toEqual(['timestamp', 'server_name', 'previous_health', 'current_health', 'source', 'response_time_ms', 'details']);
    expect(res.rows).toEqual([
      { timestamp: t.s1, server_name: 'fs-dev', previous_health: 'HEALTHY', current_health: 'DEGRADED', source: 'heartbeat', response_time_ms: 250, details: 'p95 latency above threshold' },
      { timestamp: t.s4, server_name: 'slack-dev', previous_health: 'HEALTHY', current_health: 'UNHEALTHY', source: 'manual', response_time_ms: 8, details: 'stopped by operator' },
      { timestamp: t.s2, server_name: 'fs-dev', previous_health: 'UNKNOWN', current_health: 'HEALTHY', source: 'dtma', response_time_ms: 40, details: 'deployed v1.4.2' },
    ]);
  });

  it('get_agent_connection_logs(agent, hours): that agent, that window, newest first', async () => {
    const res = await c.query('SELECT * FROM get_agent_connection_logs($1, $2)', [research, 24]);
    expect(fieldNames(res)).toEqual(['timestamp', 'event_type', 'event_details', 'server_name', 'latency_ms', 'error_data']);
    const l1 = { timestamp: t.l1, event_type: 'connected', event_details: 'handshake completed', server_name: 'fs-dev', latency_ms: 120, error_data: null };
    const l2 = {
      timestamp: t.l2,
      event_type: 'error',
      event_details: 'tools/call failed',
      server_name: 'github-dev',
      latency_ms: 3000,
      error_data: { code: -32000, message: 'rate limited', retry_after_s: 30 },
    };
    const l4 = { timestamp: t.l4, event_type: 'disconnected', event_details: 'idle timeout', server_name: 'fs-dev', latency_ms: null, error_data: null };
    expect(res.rows).toEqual([l1, l2]);
    expect((await c.query('SELECT * FROM get_agent_connection_logs($1)', [research])).rows).toEqual([l1, l2]); // default 24 h
    expect((await c.query('SELECT * FROM get_agent_connection_logs($1, $2)', [research, 48])).rows).toEqual([l1, l2, l4]);
    expect((await c.query('SELECT * FROM get_agent_connection_logs($1, $2)', [research, 1])).rows).toEqual([]);
  });

  it('get_server_status_history(server, hours): that server, that window, newest first', async () => {
    const res = await c.query('SELECT * FROM get_server_status_history($1, $2)', [fsServer, 24]);
    expect(fieldNames(res)).toEqual(['timestamp', 'previous_state', 'current_state', 'source', 'details', 'response_time_ms']);
    const s1 = { timestamp: t.s1, previous_state: 'running', current_state: 'degraded', source: 'heartbeat', details: 'p95 latency above threshold', response_time_ms: 250 };
    const s2 = { timestamp: t.s2, previous_state: 'starting', current_state: 'running', source: 'dtma', details: 'deployed v1.4.2', response_time_ms: 40 };
    const s3 = { timestamp: t.s3, previous_state: 'stopped', current_state: 'starting', source: 'system', details: 'scheduled start', response_time_ms: null };
    expect(res.rows).toEqual([s1]);
    expect((await c.query('SELECT * FROM get_server_status_history($1, $2)', [fsServer, 100])).rows).toEqual([s1, s2]);
    expect((await c.query('SELECT * FROM get_server_status_history($1, $2)', [fsServer, 24 * 9])).rows).toEqual([s1, s2, s3]);
    expect((await c.query('SELECT * FROM get_server_status_history($1)', [slackServer])).rows).toEqual([
      { timestamp: t.s4, previous_state: 'running', current_state: 'stopped', source: 'manual', details: 'stopped by operator', response_time_ms: 8 },
    ]);
  });
});
