import type { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDatabase } from '../src/testing';
import { connect, DAY, rows, scalar } from './helpers';

/**
 * Every index the two seeds name, with the definition pg_get_indexdef() must
 * return for it. "ON ONLY" marks an index on a partitioned table (each
 * partition carries an attached copy).
 */
const SEED_000_INDEXES: Record<string, string> = {
  idx_agent_mcp_connection_logs_connection_id: 'ON ONLY public.agent_mcp_connection_logs USING btree (connection_id)',
  idx_agent_mcp_connection_logs_timestamp: 'ON ONLY public.agent_mcp_connection_logs USING btree ("timestamp")',
  idx_agent_mcp_connection_logs_event_type: 'ON ONLY public.agent_mcp_connection_logs USING btree (event_type)',
  idx_agent_mcp_connection_logs_created_by: 'ON ONLY public.agent_mcp_connection_logs USING btree (created_by)',
  idx_agent_mcp_connection_logs_connection_timestamp: 'ON ONLY public.agent_mcp_connection_logs USING btree (connection_id, "timestamp")',
  idx_agent_mcp_connection_logs_event_timestamp: 'ON ONLY public.agent_mcp_connection_logs USING btree (event_type, "timestamp")',
  idx_mcp_server_status_logs_server_id: 'ON ONLY public.mcp_server_status_logs USING btree (server_id)',
  idx_mcp_server_status_logs_timestamp: 'ON ONLY public.mcp_server_status_logs USING btree ("timestamp")',
  idx_mcp_server_status_logs_source: 'ON ONLY public.mcp_server_status_logs USING btree (source)',
  idx_mcp_server_status_logs_session_id: 'ON ONLY public.mcp_server_status_logs USING btree (sync_session_id)',
  idx_mcp_server_status_logs_server_timestamp: 'ON ONLY public.mcp_server_status_logs USING btree (server_id, "timestamp")',
  idx_mcp_server_status_logs_source_timestamp: 'ON ONLY public.mcp_server_status_logs USING btree (source, "timestamp")',
  idx_agent_mcp_connection_logs_errors: `ON ONLY public.agent_mcp_connection_logs USING btree ("timestamp") WHERE (event_type = 'error'::text)`,
  // Seed: (server_id, timestamp) WHERE timestamp > NOW() - INTERVAL '7 days'. NOW() is not allowed in an
  // index predicate (not immutable); the migration keeps the name with a descending, unfiltered definition.
  idx_mcp_server_status_logs_recent: 'ON ONLY public.mcp_server_status_logs USING btree (server_id, "timestamp" DESC)',
  // Seed: EXTRACT(YEAR FROM timestamp), not immutable for timestamptz; the year is taken in UTC instead.
  idx_agent_mcp_connection_logs_archive_timestamp_year:
    `ON ONLY public.agent_mcp_connection_logs_archive USING btree (EXTRACT(year FROM ("timestamp" AT TIME ZONE 'UTC'::text)), "timestamp")`,
  idx_mcp_server_status_logs_archive_timestamp_year:
    `ON ONLY public.mcp_server_status_logs_archive USING btree (EXTRACT(year FROM ("timestamp" AT TIME ZONE 'UTC'::text)), "timestamp")`,
};

const SEED_004_INDEXES: Record<string, string> = {
  idx_audit_logs_created_action: 'ON ONLY public.audit_logs USING btree (created_at, action_type)',
  idx_security_events_occurred_severity: 'ON public.security_events USING btree (occurred_at, severity)',
  idx_user_sessions_user_active: 'ON public.user_sessions USING btree (user_id, is_active)',
  idx_access_controls_user_server: 'ON public.access_controls USING btree (user_id, mcp_server_id)',
  idx_mcp_servers_owner_status: 'ON public.mcp_servers USING btree (owner_id, status)',
  idx_mcp_servers_health_check: 'ON public.mcp_servers USING btree (last_health_check, status)',
  idx_audit_logs_failures: 'ON ONLY public.audit_logs USING btree (action_type, created_at) WHERE (success = false)',
  idx_security_events_critical_unresolved:
    `ON public.security_events USING btree (occurred_at, event_type) WHERE ((severity = ANY (ARRAY['HIGH'::text, 'CRITICAL'::text])) AND (resolved = false))`,
  idx_config_unique_server_key:
    `ON public.configurations USING btree (mcp_server_id, key, status) WHERE ((mcp_server_id IS NOT NULL) AND (status = 'ACTIVE'::text))`,
  idx_audit_logs_description_fts: `ON ONLY public.audit_logs USING gin (to_tsvector('english'::regconfig, description))`,
  idx_security_events_description_fts: `ON public.security_events USING gin (to_tsvector('english'::regconfig, description))`,
};

const UNIQUE = new Set(['idx_config_unique_server_key']);

let db: TestDatabase;
let c: Client;

beforeAll(async () => {
  db = await freshDatabase();
  c = await connect(db.url);
});

afterAll(async () => {
  await c?.end();
  await db?.drop();
});

describe('indexes named in the seeds', () => {
  for (const [seed, indexes] of [
    ['000', SEED_000_INDEXES],
    ['004', SEED_004_INDEXES],
  ] as const) {
    it(`seed ${seed}: every index exists, is valid and has the seed's definition`, async () => {
      const found = await rows<{ name: string; def: string; valid: boolean; unique: boolean }>(
        c,
        `SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def, i.indisvalid AS valid, i.indisunique AS unique
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE c.relname = ANY($1) AND c.relnamespace = 'public'::regnamespace
          ORDER BY 1`,
        [Object.keys(indexes)],
      );
      expect(found.map((f) => f.name)).toEqual(Object.keys(indexes).sort());
      for (const f of found) {
        const kind = UNIQUE.has(f.name) ? 'CREATE UNIQUE INDEX' : 'CREATE INDEX';
        expect(f.def, f.name).toBe(`${kind} ${f.name} ${indexes[f.name]}`);
        expect(f.valid, f.name).toBe(true);
        expect(f.unique, f.name).toBe(UNIQUE.has(f.name));
      }
    });
  }

  it('every index on a partitioned table has an attached copy on every partition', async () => {
    const partitioned = Object.entries({ ...SEED_000_INDEXES, ...SEED_004_INDEXES }).filter(([, def]) => def.startsWith('ON ONLY'));
    expect(partitioned.length).toBeGreaterThan(10);
    for (const [name] of partitioned) {
      const r = await rows<{ partitions: number; copies: number }>(
        c,
        `SELECT (SELECT count(*)::int FROM pg_inherits WHERE inhparent = i.indrelid) AS partitions,
                (SELECT count(*)::int FROM pg_inherits WHERE inhparent = i.indexrelid) AS copies
           FROM pg_index i WHERE i.indexrelid = $1::regclass`,
        [`public.${name}`],
      );
      expect(r[0].partitions, name).toBeGreaterThan(0);
      expect(r[0].copies, name).toBe(r[0].partitions);
    }
  });
});

// ---------------------------------------------------------------- full-text search plans

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

function flatten(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(flatten)];
}

async function plan(sql: string, params: unknown[]): Promise<PlanNode[]> {
  const res = await c.query(`EXPLAIN (FORMAT JSON) ${sql}`, params);
  const doc = res.rows[0]['QUERY PLAN'] as { Plan: PlanNode }[];
  return flatten(doc[0].Plan);
}

describe('full-text search uses the GIN indexes', () => {
  const AUDIT_FTS = `SELECT id, description FROM audit_logs WHERE to_tsvector('english', description) @@ plainto_tsquery('english', $1)`;
  const EVENTS_FTS = `SELECT id, description FROM security_events WHERE to_tsvector('english', description) @@ plainto_tsquery('english', $1)`;

  beforeAll(async () => {
    // a few thousand rows spread over the partitions (current month, next month, default)
    await c.query(
      `INSERT INTO audit_logs (created_at, action_type, description)
       SELECT now() - (g % 60) * interval '1 day' + CASE WHEN g % 7 = 0 THEN interval '35 days' ELSE interval '0' END,
              'tool.call',
              'routine tool call number ' || g || CASE WHEN g % 500 = 0 THEN ' rotated the signing credentials' ELSE '' END
         FROM generate_series(1, 4000) g`,
    );
    await c.query(
      `INSERT INTO security_events (occurred_at, event_type, severity, description)
       SELECT now() - g * interval '1 minute', 'probe', 'LOW',
              'periodic probe ' || g || CASE WHEN g % 400 = 0 THEN ' brute force attempt blocked' ELSE '' END
         FROM generate_series(1, 4000) g`,
    );
    await c.query('ANALYZE audit_logs');
    await c.query('ANALYZE security_events');
    await c.query('SET enable_seqscan = off');
  });

  afterAll(async () => {
    await c.query('RESET enable_seqscan');
  });

  it('audit_logs: a Bitmap Index Scan on the partition copy of idx_audit_logs_description_fts in every partition, no other scan', async () => {
    const nodes = await plan(AUDIT_FTS, ['signing credentials']);
    const scans = nodes.filter((n) => /Scan/.test(n['Node Type']));
    const indexScans = scans.filter((n) => n['Node Type'] === 'Bitmap Index Scan');
    const heapScans = scans.filter((n) => n['Node Type'] === 'Bitmap Heap Scan');
    // nothing but bitmap scans: no Seq Scan, no other index
    expect(scans.length).toBe(indexScans.length + heapScans.length);

    // the partition indexes attached to the seed's index (names are generated: <partition>_to_tsvector_idx)
    const copies = await rows<{ index: string; partition: string }>(
      c,
      `SELECT ci.relname AS index, ct.relname AS partition
         FROM pg_inherits h
         JOIN pg_class ci ON ci.oid = h.inhrelid
         JOIN pg_index x ON x.indexrelid = h.inhrelid
         JOIN pg_class ct ON ct.oid = x.indrelid
        WHERE h.inhparent = 'public.idx_audit_logs_description_fts'::regclass
        ORDER BY 1`,
    );
    const partitions = await rows<{ p: string }>(c, `SELECT inhrelid::regclass::text AS p FROM pg_inherits WHERE inhparent = 'audit_logs'::regclass ORDER BY 1`);
    expect(copies.map((x) => x.partition).sort()).toEqual(partitions.map((p) => p.p));
    for (const x of copies) expect(x.index).toBe(`${x.partition}_to_tsvector_idx`);

    expect(indexScans.map((n) => n['Index Name']).sort()).toEqual(copies.map((x) => x.index).sort());
    expect(heapScans.map((n) => n['Relation Name']).sort()).toEqual(copies.map((x) => x.partition).sort());

    // and the query finds exactly the matching rows
    const hits = await rows<{ description: string }>(c, AUDIT_FTS, ['signing credentials']);
    expect(hits).toHaveLength(8);
    for (const h of hits) expect(h.description).toMatch(/rotated the signing credentials$/);
  });

  it('security_events: a Bitmap Index Scan on idx_security_events_description_fts', async () => {
    const nodes = await plan(EVENTS_FTS, ['brute force']);
    const scans = nodes.filter((n) => /Scan/.test(n['Node Type']));
    expect(scans.map((n) => [n['Node Type'], n['Index Name'] ?? n['Relation Name']])).toEqual([
      ['Bitmap Heap Scan', 'security_events'],
      ['Bitmap Index Scan', 'idx_security_events_description_fts'],
    ]);
    const hits = await rows<{ description: string }>(c, EVENTS_FTS, ['brute force']);
    expect(hits).toHaveLength(10);
    for (const h of hits) expect(h.description).toMatch(/brute force attempt blocked$/);
  });
});

describe('archive year indexes are usable', () => {
  it('a query on the UTC year of the archived timestamp can use idx_agent_mcp_connection_logs_archive_timestamp_year', async () => {
    // enough rows in the archive's default partition for the planner to care
    const conn = await scalar<string>(
      c,
      `WITH u AS (INSERT INTO users (username, email) VALUES ('ivy', 'ivy@example.com') RETURNING id),
            s AS (INSERT INTO mcp_servers (name) VALUES ('archive-srv') RETURNING id),
            a AS (INSERT INTO agents (user_id, name) SELECT id, 'arch' FROM u RETURNING id)
       INSERT INTO agent_mcp_connections (agent_id, mcp_server_instance_id) SELECT a.id, s.id FROM a, s RETURNING id`,
    );
    await c.query(
      `INSERT INTO agent_mcp_connection_logs_archive (id, connection_id, event_type, timestamp, ingest_xid)
       SELECT gen_random_uuid(), $1, 'connected', now() - interval '400 days' - g * interval '6 hours', 1
         FROM generate_series(1, 3000) g`,
      [conn],
    );
    await c.query('ANALYZE agent_mcp_connection_logs_archive');
    await c.query('SET enable_seqscan = off');
    const year = new Date(Date.now() - 500 * DAY).getUTCFullYear();
    const nodes = await plan(
      `SELECT count(*) FROM agent_mcp_connection_logs_archive WHERE EXTRACT(YEAR FROM (timestamp AT TIME ZONE 'UTC')) = $1`,
      [year],
    );
    const indexNodes = nodes.filter((n) => n['Index Name']);
    expect(indexNodes.length).toBeGreaterThan(0);
    const parents = await rows<{ parent: string }>(
      c,
      `SELECT DISTINCT h.inhparent::regclass::text AS parent FROM pg_inherits h WHERE h.inhrelid = ANY($1::regclass[])`,
      [indexNodes.map((n) => n['Index Name'])],
    );
    expect(parents).toEqual([{ parent: 'idx_agent_mcp_connection_logs_archive_timestamp_year' }]);
    await c.query('RESET enable_seqscan');
    const count = await scalar<string>(
      c,
      `SELECT count(*) FROM agent_mcp_connection_logs_archive WHERE EXTRACT(YEAR FROM (timestamp AT TIME ZONE 'UTC')) = $1`,
      [year],
    );
    expect(Number(count)).toBe(
      Number(await scalar(c, `SELECT count(*) FROM agent_mcp_connection_logs_archive WHERE timestamp >= make_timestamptz($1, 1, 1, 0, 0, 0, 'UTC') AND timestamp < make_timestamptz($1 + 1, 1, 1, 0, 0, 0, 'UTC')`, [year])),
    );
  });
});
