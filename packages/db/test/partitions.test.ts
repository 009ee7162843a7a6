import type { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDatabase } from '../src/testing';
import {
  ago,
  connect,
  DAY,
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

beforeAll(async () => {
  db = await freshDatabase();
  c = await connect(db.url);
  await c.query(`SET TIME ZONE 'UTC'`); // partition bounds print in the session time zone
  const user = await insertUser(c, 'frank');
  serverId = await insertServer(c, 'filesystem', { ownerId: user });
  connectionId = await insertConnection(c, await insertAgent(c, user, 'partition-agent'), serverId);
});

afterAll(async () => {
  await c?.end();
  await db?.drop();
});

/** The time-partitioned tables of the two seeds (later migrations may register more). */
const SEED_PARENTS = [
  'agent_mcp_connection_logs',
  'agent_mcp_connection_logs_archive',
  'audit_logs',
  'mcp_server_status_logs',
  'mcp_server_status_logs_archive',
];

const partitions = async (parent: string) =>
  (
    await rows<{ name: string; bound: string }>(
      c,
      `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = $1::regclass ORDER BY 1`,
      [parent],
    )
  ).map((p) => [p.name, p.bound]);

const isoDay = (d: Date) => d.toISOString().slice(0, 10);
const addDays = (d: Date, n: number) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + n));
const dailyName = (parent: string, d: Date) => `${parent}_p${isoDay(d).replace(/-/g, '')}`;
const dayBound = (d: Date) => `FOR VALUES FROM ('${isoDay(d)} 00:00:00+00') TO ('${isoDay(addDays(d, 1))} 00:00:00+00')`;

async function dbToday(): Promise<Date> {
  const day = await scalar<string>(c, `SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')`);
  return new Date(`${day}T00:00:00Z`);
}

describe('layout after migration', () => {
  it('the log tables, their archives and audit_logs are range partitioned on their time column', async () => {
    const keys = await rows<{ t: string; key: string }>(
      c,
      `SELECT c.relname AS t, pg_get_partkeydef(c.oid) AS key FROM pg_class c
        WHERE c.relkind = 'p' AND c.relnamespace = 'public'::regnamespace AND c.relname = ANY($1) ORDER BY 1`,
      [SEED_PARENTS],
    );
    expect(keys).toEqual([
      { t: 'agent_mcp_connection_logs', key: 'RANGE ("timestamp")' },
      { t: 'agent_mcp_connection_logs_archive', key: 'RANGE ("timestamp")' },
      { t: 'audit_logs', key: 'RANGE (created_at)' },
      { t: 'mcp_server_status_logs', key: 'RANGE ("timestamp")' },
      { t: 'mcp_server_status_logs_archive', key: 'RANGE ("timestamp")' },
    ]);
    expect(await rows(c, `SELECT * FROM partitioned_tables WHERE parent_table = ANY($1) ORDER BY parent_table`, [SEED_PARENTS])).toEqual([
      { parent_table: 'agent_mcp_connection_logs', partition_column: 'timestamp', width: 'day', premake: 7 },
      { parent_table: 'agent_mcp_connection_logs_archive', partition_column: 'timestamp', width: 'day', premake: 1 },
      { parent_table: 'audit_logs', partition_column: 'created_at', width: 'month', premake: 2 },
      { parent_table: 'mcp_server_status_logs', partition_column: 'timestamp', width: 'day', premake: 7 },
      { parent_table: 'mcp_server_status_logs_archive', partition_column: 'timestamp', width: 'day', premake: 1 },
    ]);
  });

  for (const parent of ['agent_mcp_connection_logs', 'mcp_server_status_logs']) {
    it(`${parent}: daily partitions (UTC) for today … today+7 and a default partition, nothing else`, async () => {
      const today = await dbToday();
      const expected = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => [dailyName(parent, addDays(today, n)), dayBound(addDays(today, n))]);
      expect(await partitions(parent)).toEqual([...expected, [`${parent}_default`, 'DEFAULT']].sort((a, b) => a[0].localeCompare(b[0])));
    });
  }

  it('the archives start with a default partition only', async () => {
    expect(await partitions('agent_mcp_connection_logs_archive')).toEqual([['agent_mcp_connection_logs_archive_default', 'DEFAULT']]);
    expect(await partitions('mcp_server_status_logs_archive')).toEqual([['mcp_server_status_logs_archive_default', 'DEFAULT']]);
  });

  it('audit_logs: monthly partitions audit_logs_yYYYYmMM (UTC) for this month and the next two, and a default', async () => {
    const today = await dbToday();
    const month = (n: number) => new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() + n, 1));
    const name = (d: Date) => `audit_logs_y${d.getUTCFullYear()}m${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
    const bound = (d: Date, e: Date) => `FOR VALUES FROM ('${isoDay(d)} 00:00:00+00') TO ('${isoDay(e)} 00:00:00+00')`;
    expect(await partitions('audit_logs')).toEqual([
      ['audit_logs_default', 'DEFAULT'],
      ...[0, 1, 2].map((n) => [name(month(n)), bound(month(n), month(n + 1))]),
    ]);
  });

  it('rows land in the partition of their day; rows without one land in the default partition', async () => {
    const now = await insertConnectionLog(c, connectionId, new Date());
    const old = await insertConnectionLog(c, connectionId, ago(400 * DAY));
    const future = await insertConnectionLog(c, connectionId, new Date(Date.now() + 30 * DAY));
    expect(await partitionOf(c, 'agent_mcp_connection_logs', now)).toBe(dailyName('agent_mcp_connection_logs', await dbToday()));
    expect(await partitionOf(c, 'agent_mcp_connection_logs', old)).toBe('agent_mcp_connection_logs_default');
    expect(await partitionOf(c, 'agent_mcp_connection_logs', future)).toBe('agent_mcp_connection_logs_default');
    await c.query('DELETE FROM agent_mcp_connection_logs WHERE id = ANY($1::uuid[])', [[now, old, future]]);
  });
});

describe('ensure_partition', () => {
  const defaultCount = () => scalar<number>(c, 'SELECT count(*)::int FROM agent_mcp_connection_logs_default');
  const doc = (table: string, id: string) => scalar<Record<string, unknown>>(c, `SELECT to_jsonb(t.*) FROM ${table} t WHERE id = $1`, [id]);

  it("creates the day's partition for a row in the default partition and moves that day's rows into it, unchanged", async () => {
    const day = new Date('2025-03-03T00:00:00Z');
    const inDay = [
      await insertConnectionLog(c, connectionId, new Date('2025-03-03T00:00:00.000Z'), { eventType: 'connected' }),
      await insertConnectionLog(c, connectionId, new Date('2025-03-03T10:15:00.123Z'), { eventType: 'error', errorData: { code: 'EPIPE' } }),
      await insertConnectionLog(c, connectionId, new Date('2025-03-03T23:59:59.999Z'), { eventType: 'disconnected' }),
    ];
    const neighbours = [
      await insertConnectionLog(c, connectionId, new Date('2025-03-02T23:59:59.999Z')),
      await insertConnectionLog(c, connectionId, new Date('2025-03-04T00:00:00.000Z')),
    ];
    for (const id of [...inDay, ...neighbours]) {
      expect(await partitionOf(c, 'agent_mcp_connection_logs', id)).toBe('agent_mcp_connection_logs_default');
    }
    const before = new Map<string, unknown>();
    for (const id of inDay) before.set(id, await doc('agent_mcp_connection_logs', id));
    const defaultBefore = await defaultCount();

    const name = await scalar<string>(c, `SELECT ensure_partition('agent_mcp_connection_logs', $1)`, [new Date('2025-03-03T12:00:00Z')]);
    expect(name).toBe('agent_mcp_connection_logs_p20250303');

    expect(await defaultCount()).toBe(defaultBefore - 3);
    for (const id of inDay) {
      expect(await partitionOf(c, 'agent_mcp_connection_logs', id)).toBe(name);
      expect(await doc('agent_mcp_connection_logs', id)).toEqual(before.get(id));
      expect(await scalar(c, `SELECT count(*)::int FROM agent_mcp_connection_logs WHERE id = $1`, [id])).toBe(1);
    }
    for (const id of neighbours) {
      expect(await partitionOf(c, 'agent_mcp_connection_logs', id)).toBe('agent_mcp_connection_logs_default');
    }
    expect((await partitions('agent_mcp_connection_logs')).find(([n]) => n === name)).toEqual([name, dayBound(day)]);
  });

  it('the partition built from the default rows is complete: every index, CHECK and foreign key applies', async () => {
    const name = 'agent_mcp_connection_logs_p20250303';
    const missing = await rows<{ index: string }>(
      c,
      `SELECT p.indexrelid::regclass::text AS index FROM pg_index p
        WHERE p.indrelid = 'agent_mcp_connection_logs'::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_inherits h JOIN pg_index x ON x.indexrelid = h.inhrelid
                           WHERE h.inhparent = p.indexrelid AND x.indrelid = $1::regclass)`,
      [name],
    );
    expect(missing).toEqual([]);
    const at = new Date('2025-03-03T08:00:00Z');
    const check = await pgError(insertConnectionLog(c, connectionId, at, { eventType: 'exploded' }));
    expect([check.code, check.constraint]).toEqual(['23514', 'agent_mcp_connection_logs_event_type_check']);
    const fk = await pgError(insertConnectionLog(c, '00000000-0000-4000-8000-000000000000', at));
    expect([fk.code, fk.constraint]).toEqual(['23503', 'agent_mcp_connection_logs_connection_id_fkey']);
    // and ON DELETE CASCADE reaches it
    const agent = await insertAgent(c, await insertUser(c, 'gina'), 'tmp');
    const tmpConn = await insertConnection(c, agent, serverId);
    const row = await insertConnectionLog(c, tmpConn, at);
    expect(await partitionOf(c, 'agent_mcp_connection_logs', row)).toBe(name);
    await c.query('DELETE FROM agent_mcp_connections WHERE id = $1', [tmpConn]);
    expect(await scalar(c, 'SELECT count(*)::int FROM agent_mcp_connection_logs WHERE id = $1', [row])).toBe(0);
  });

  it('is idempotent and creates an empty partition directly when the default partition has no rows of that day', async () => {
    const before = await partitions('mcp_server_status_logs');
    const name = await scalar<string>(c, `SELECT ensure_partition('mcp_server_status_logs', $1)`, [new Date('2024-02-29T13:00:00Z')]);
    expect(name).toBe('mcp_server_status_logs_p20240229');
    expect(await scalar(c, `SELECT ensure_partition('mcp_server_status_logs', $1)`, [new Date('2024-02-29T23:00:00Z')])).toBe(name);
    expect(await partitions('mcp_server_status_logs')).toEqual(
      [...before, [name, dayBound(new Date('2024-02-29T00:00:00Z'))]].sort((a, b) => a[0].localeCompare(b[0])),
    );
    const id = await insertStatusLog(c, serverId, new Date('2024-02-29T06:00:00Z'));
    expect(await partitionOf(c, 'mcp_server_status_logs', id)).toBe(name);
  });

  it('rejects a table that is not registered in partitioned_tables', async () => {
    const err = await pgError(c.query(`SELECT ensure_partition('users', now())`));
    expect(err.code).toBe('P0002'); // SELECT … INTO STRICT: no_data_found
  });
});

describe('maintain_partitions', () => {
  it('creates what is missing, returns the count, and a second call returns 0', async () => {
    const count = async () => scalar<number>(c, `SELECT count(*)::int FROM pg_inherits i JOIN partitioned_tables p ON i.inhparent = p.parent_table::regclass`);
    const before = await count();
    const first = await scalar<number>(c, 'SELECT maintain_partitions()');
    const middle = await count();
    expect(middle - before).toBe(first);
    // the archives (premake 1) start with a default partition only: they get today's and tomorrow's
    expect(first).toBeGreaterThanOrEqual(4);
    const today = await dbToday();
    for (const parent of ['agent_mcp_connection_logs_archive', 'mcp_server_status_logs_archive']) {
      expect((await partitions(parent)).map(([n]) => n)).toEqual([`${parent}_default`, dailyName(parent, today), dailyName(parent, addDays(today, 1))].sort());
    }
    const snapshot = await partitions('agent_mcp_connection_logs');
    expect(await scalar(c, 'SELECT maintain_partitions()')).toBe(0);
    expect(await count()).toBe(middle);
    expect(await partitions('agent_mcp_connection_logs')).toEqual(snapshot);
  });

  it('recreates a missing future partition and back-fills past days from p_from, draining the default partition', async () => {
    const today = await dbToday();
    const future = dailyName('mcp_server_status_logs', addDays(today, 5));
    await c.query(`DROP TABLE ${future}`);
    expect(await scalar(c, `SELECT maintain_partitions('mcp_server_status_logs')`)).toBe(1);
    expect((await partitions('mcp_server_status_logs')).map(([n]) => n)).toContain(future);

    const twoDaysAgo = await insertStatusLog(c, serverId, ago(2 * DAY));
    expect(await partitionOf(c, 'mcp_server_status_logs', twoDaysAgo)).toBe('mcp_server_status_logs_default');
    expect(await scalar(c, `SELECT maintain_partitions('mcp_server_status_logs', now() - interval '3 days')`)).toBe(3);
    expect(await partitionOf(c, 'mcp_server_status_logs', twoDaysAgo)).toBe(dailyName('mcp_server_status_logs', addDays(today, -2)));
    expect(await scalar(c, `SELECT maintain_partitions('mcp_server_status_logs', now() - interval '3 days')`)).toBe(0);
  });
});

describe('concurrent ensure_partition', () => {
  let a: Client;
  let b: Client;
  beforeAll(async () => {
    a = await connect(db.url);
    b = await connect(db.url);
  });
  afterAll(async () => {
    await a?.end();
    await b?.end();
  });

  /** Waits until backend `pid` is blocked on an advisory lock. */
  async function waitForAdvisoryWait(pid: number): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const waiting = await scalar<boolean>(
        c,
        `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock' AND wait_event = 'advisory')`,
        [pid],
      );
      if (waiting) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`backend ${pid} never waited on the advisory lock`);
  }

  for (const withRows of [false, true]) {
    it(`the second creator waits for the first and both succeed (${withRows ? 'rows to move from the default partition' : 'empty day'})`, async () => {
      const day = withRows ? new Date('2024-06-10T12:00:00Z') : new Date('2024-06-11T12:00:00Z');
      const expectedName = withRows ? 'agent_mcp_connection_logs_p20240610' : 'agent_mcp_connection_logs_p20240611';
      const row = withRows ? await insertConnectionLog(c, connectionId, day) : undefined;
      const bPid = await scalar<number>(b, 'SELECT pg_backend_pid()');

      await a.query('BEGIN');
      expect(await scalar(a, `SELECT ensure_partition('agent_mcp_connection_logs', $1)`, [day])).toBe(expectedName);
      // b does not see a's uncommitted partition, so it queues behind a's advisory lock
      const second = b.query(`SELECT ensure_partition('agent_mcp_connection_logs', $1) AS p`, [day]);
      await waitForAdvisoryWait(bPid);
      await a.query('COMMIT');

      expect((await second).rows).toEqual([{ p: expectedName }]);
      expect((await partitions('agent_mcp_connection_logs')).filter(([n]) => n === expectedName)).toHaveLength(1);
      if (row) {
        expect(await partitionOf(c, 'agent_mcp_connection_logs', row)).toBe(expectedName);
        expect(await scalar(c, 'SELECT count(*)::int FROM agent_mcp_connection_logs WHERE id = $1', [row])).toBe(1);
      }
    });
  }

  it('two ensure_partition calls for the same day started at once both resolve to the same partition', async () => {
    const day = new Date('2024-06-12T01:00:00Z');
    const results = await Promise.all([
      a.query(`SELECT ensure_partition('agent_mcp_connection_logs', $1) AS p`, [day]),
      b.query(`SELECT ensure_partition('agent_mcp_connection_logs', $1) AS p`, [day]),
    ]);
    expect(results.map((r) => r.rows[0].p)).toEqual(['agent_mcp_connection_logs_p20240612', 'agent_mcp_connection_logs_p20240612']);
  });
});
