/**
 * Heartbeat benchmark for the status-sync service: N servers each beating
 * every P seconds (default 10,000 every 10 s = 1,000 beats/s), open loop, for
 * D seconds, against the real service (services/status-sync/dist/main.js, a
 * child process) over gRPC with `service`-role API keys. 1% of the servers
 * flip their health once, mid-run: the service must write exactly one history
 * row per flip and none for the steady beats.
 *
 * Service paths:
 *   - batch:   what a collector (or the client library's HeartbeatRecorder)
 *              does: beats due are gathered and sent every --flush-ms as
 *              HeartbeatBatch calls of at most --batch-size beats, one call in
 *              flight per collector (--callers collectors, each with its own
 *              service account, server i on collector i mod callers). A beat's
 *              latency runs from when it was due to when its call answered, so
 *              it includes the wait for the next flush.
 *   - service: one Heartbeat call per beat (the single-beat RPC), for comparison.
 *
 * Baselines, same schedule, same database, measured in the same run over a
 * pg pool of the service's size (12) with no gRPC, no authentication and no
 * rate-limit accounting:
 *   - update:  one single-row UPDATE of the server's last-seen and metrics per beat (the floor);
 *   - naive:   an UPDATE plus one history row per beat (what the service avoids).
 *
 *   npm run bench:heartbeat -w @mcp/bench -- [--servers 10000] [--period 10] [--duration 60] [--flip-percent 1]
 *        [--callers 1] [--flush-ms 200] [--batch-size 500] [--paths batch,service,update,naive] [--profile DIR] [--keep]
 *
 * Database: BENCH_DATABASE_URL (an admin URL allowed to CREATE DATABASE), default
 * postgres://postgres@127.0.0.1:5432/postgres. A fresh database is created and dropped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { freePort, migrateUp } from '@mcp/db';
import { createDatabase, dropDatabase, uniqueDatabaseName } from '@mcp/db/testing';
import { statussync } from '@mcp/proto';
import { provisionPrincipal, waitForServing } from '@mcp/runtime';
import { Client, Pool } from 'pg';

interface Options {
  servers: number;
  periodS: number;
  durationS: number;
  flipPercent: number;
  /** Service accounts the beats are spread over (server i uses account i mod callers), as a fleet's gateways would be. */
  callers: number;
  /** batch path: how often a collector sends what is due, and the most beats per call. */
  flushMs: number;
  batchSize: number;
  paths: string[];
  /** Write a CPU profile of each service process (.cpuprofile) into this directory. */
  profileDir: string | undefined;
  keep: boolean;
}

const PATHS = ['batch', 'service', 'update', 'naive'];
/** The service's pool size and application_name (services/status-sync/src/main.ts); the baselines get the same size. */
const POOL_SIZE = 12;
const SERVICE_APPLICATION_NAME = 'status-sync';
/** Open loop, but bounded: beats beyond this many in flight are counted as dropped, not queued without end. */
const MAX_IN_FLIGHT = 5_000;
const CALL_DEADLINE_MS = 10_000;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    servers: 10_000,
    periodS: 10,
    durationS: 60,
    flipPercent: 1,
    callers: 1,
    flushMs: 200,
    batchSize: 500,
    paths: PATHS,
    profileDir: undefined,
    keep: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i].split('=');
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${name} needs a value`);
      return v;
    };
    const positive = (): number => {
      const n = Number(value());
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number`);
      return n;
    };
    if (name === '--servers') o.servers = Math.floor(positive());
    else if (name === '--period') o.periodS = positive();
    else if (name === '--duration') o.durationS = positive();
    else if (name === '--flip-percent') o.flipPercent = positive();
    else if (name === '--callers') o.callers = Math.floor(positive());
    else if (name === '--flush-ms') o.flushMs = positive();
    else if (name === '--batch-size') o.batchSize = Math.min(1000, Math.floor(positive()));
    else if (name === '--paths') o.paths = value().split(',');
    else if (name === '--profile') o.profileDir = path.resolve(value());
    else if (name === '--keep') o.keep = true;
    else throw new Error(`unknown argument ${name}`);
  }
  for (const p of o.paths) if (!PATHS.includes(p)) throw new Error(`unknown path ${p} (known: ${PATHS.join(',')})`);
  return o;
}

// ------------------------------------------------------------------ load

interface Beat {
  server: number;
  /** The flipped servers report DEGRADED from the middle of the run on. */
  degraded: boolean;
  cpu: number;
}

interface RunResult {
  path: string;
  /** Flipped servers that sent a DEGRADED beat during the run: the real transitions offered. */
  transitionsOffered: number;
  offered: number;
  completed: number;
  failed: number;
  dropped: number;
  seconds: number;
  latenciesMs: Float64Array;
  errors: Map<string, number>;
  cpu: CpuUsed;
}

interface ServiceRunResult extends RunResult {
  /** Transitions the service said it recorded. */
  transitions: number;
  /** Duration of each RPC (a HeartbeatBatch call carries many beats). */
  callLatenciesMs: Float64Array;
}

/**
 * Server i beats at i * period / servers + k * period: an even, open-loop
 * schedule of servers / period beats per second, whatever the responses do.
 */
async function runSchedule(o: Options, flipped: Set<number>, path: string, send: (beat: Beat) => Promise<void>): Promise<Omit<RunResult, 'cpu'>> {
  const rate = o.servers / o.periodS;
  const total = Math.floor(rate * o.durationS);
  const latencies = new Float64Array(total);
  const errors = new Map<string, number>();
  let completed = 0;
  let failed = 0;
  let dropped = 0;
  let inFlight = 0;
  const start = performance.now();
  const flipAt = total / 2;
  const flippedSent = new Set<number>();
  let next = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const finishOne = () => {
    inFlight -= 1;
    if (next >= total && inFlight === 0) resolveDone();
  };
  const tick = () => {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate) + 1);
    for (; next < due; next++) {
      const n = next;
      if (inFlight >= MAX_IN_FLIGHT) {
        dropped += 1;
        continue;
      }
      const server = n % o.servers;
      inFlight += 1;
      const sent = performance.now();
      const degraded = n >= flipAt && flipped.has(server);
      if (degraded) flippedSent.add(server);
      send({ server, degraded, cpu: (n % 1000) / 10 }).then(
        () => {
          latencies[completed++] = performance.now() - sent;
          finishOne();
        },
        (err: Error & { code?: number; details?: string }) => {
          failed += 1;
          // The status, and for INTERNAL/UNKNOWN (whose details vary little and explain them) the details too.
          const explained = err.code === grpc.status.INTERNAL || err.code === grpc.status.UNKNOWN ? `: ${(err.details ?? '').slice(0, 60)}` : '';
          const key = err.code !== undefined ? `${grpc.status[err.code] ?? err.code}${explained}` : err.message.slice(0, 80);
          errors.set(key, (errors.get(key) ?? 0) + 1);
          finishOne();
        },
      );
    }
    if (next < total) setTimeout(tick, 2);
    else if (inFlight === 0) resolveDone();
  };
  tick();
  await done;
  const seconds = (performance.now() - start) / 1000;
  return { path, transitionsOffered: flippedSent.size, offered: total, completed, failed, dropped, seconds, latenciesMs: latencies.slice(0, completed).sort(), errors };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// ------------------------------------------------------------------ database

interface Fixture {
  url: string;
  serverIds: string[];
  tokens: string[];
}

async function prepare(adminUrl: string, name: string, o: Options): Promise<Fixture> {
  const url = await createDatabase(adminUrl, name);
  await migrateUp(url);
  const pg = new Client({ connectionString: url });
  await pg.connect();
  try {
    const {
      rows: [owner],
    } = await pg.query(`INSERT INTO users (username, email) VALUES ('bench-owner', 'bench-owner@example.test') RETURNING id`);
    // Every server starts RUNNING/HEALTHY and just seen, as a fleet in steady state would.
    const { rows } = await pg.query(
      `INSERT INTO mcp_servers (name, owner_id, status, health, current_status, last_heartbeat_at, last_activity_at)
       SELECT 'bench-server-' || g, $1, 'RUNNING', 'HEALTHY', '{"state":"RUNNING","health":"HEALTHY"}', now(), now()
         FROM generate_series(1, $2) g
       RETURNING id`,
      [owner.id, o.servers],
    );
    // The caller: a service account, as a fleet's heartbeat gateway would be. Every call still goes
    // through the guard (key check, per-call rate-limit statement); the limit itself is raised for
    // this account only (a USER-scope rate_limits row), as an operator would for a known
    // high-volume writer: the default is far below 1,000 calls/s.
    const tokens: string[] = [];
    for (let i = 0; i < o.callers; i++) {
      const principal = await provisionPrincipal(pg, { username: `bench-heartbeat-${i}`, roles: ['service'] });
      await pg.query(
        `INSERT INTO rate_limits (scope, user_id, requests_limit, window_seconds, block_on_exceed) VALUES ('USER', $1, 1000000000, 60, true)`,
        [principal.userId],
      );
      tokens.push(principal.token);
    }
    return { url, serverIds: rows.map((r) => r.id), tokens };
  } finally {
    await pg.end();
  }
}

async function resetFleet(url: string): Promise<void> {
  const pg = new Client({ connectionString: url });
  await pg.connect();
  try {
    await pg.query(
      `UPDATE mcp_servers SET status = 'RUNNING', health = 'HEALTHY', current_status = '{"state":"RUNNING","health":"HEALTHY"}',
              last_heartbeat_at = now(), stale_since = NULL`,
    );
    await pg.query('VACUUM ANALYZE mcp_servers');
    await pg.query('CHECKPOINT').catch(() => undefined);
  } finally {
    await pg.end();
  }
}

async function historyRows(url: string, since: Date, serverIds?: string[]): Promise<number> {
  const pg = new Client({ connectionString: url });
  await pg.connect();
  try {
    const { rows } = await pg.query(
      `SELECT count(*)::int AS n FROM mcp_server_status_logs WHERE timestamp >= $1 AND ($2::uuid[] IS NULL OR server_id = ANY($2::uuid[]))`,
      [since, serverIds ?? null],
    );
    return rows[0].n;
  } finally {
    await pg.end();
  }
}

// ------------------------------------------------------------------ CPU

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used, or undefined once it is gone. */
function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

interface CpuUsed {
  /** The service process (none for the direct baselines). */
  service: number;
  /** The PostgreSQL backends of the path's connections (application_name). */
  postgres: number;
}

/**
 * CPU used by one path while it runs: the service process, and the database
 * backends serving it, found by application_name and polled so that
 * connections opened mid-run count too. What the rest of a shared machine
 * does is not counted, so these figures hold where wall-clock rates do not.
 */
class CpuMeter {
  private readonly first = new Map<number, number>();
  private readonly last = new Map<number, number>();
  private readonly timer: NodeJS.Timeout;
  private readonly serviceFirst: number;

  private constructor(
    private readonly pg: Client,
    private readonly applicationName: string,
    private readonly servicePid: number | undefined,
  ) {
    this.serviceFirst = servicePid === undefined ? 0 : (processCpuSeconds(servicePid) ?? 0);
    this.timer = setInterval(() => void this.poll().catch(() => undefined), 500);
  }

  static async start(url: string, applicationName: string, servicePid?: number): Promise<CpuMeter> {
    const pg = new Client({ connectionString: url, application_name: 'bench-cpu-meter' });
    await pg.connect();
    const meter = new CpuMeter(pg, applicationName, servicePid);
    await meter.poll(true);
    return meter;
  }

  async stop(): Promise<CpuUsed> {
    clearInterval(this.timer);
    await this.poll();
    await this.pg.end();
    let postgres = 0;
    for (const [pid, seconds] of this.last) postgres += seconds - (this.first.get(pid) ?? 0);
    const service = this.servicePid === undefined ? 0 : (processCpuSeconds(this.servicePid) ?? this.serviceFirst) - this.serviceFirst;
    return { service, postgres };
  }

  private async poll(initial = false): Promise<void> {
    const { rows } = await this.pg.query('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [
      this.applicationName,
    ]);
    for (const { pid } of rows as Array<{ pid: number }>) {
      const seconds = processCpuSeconds(pid);
      if (seconds === undefined) continue;
      // A backend first seen mid-run started during it: all its CPU counts.
      if (!this.first.has(pid)) this.first.set(pid, initial ? seconds : 0);
      this.last.set(pid, seconds);
    }
  }
}

// ------------------------------------------------------------------ paths

async function startServiceProcess(url: string, profileDir: string | undefined): Promise<{ address: string; child: ChildProcess }> {
  const port = await freePort();
  const profile = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const child = spawn(process.execPath, [...profile, path.resolve(__dirname, '../../services/status-sync/dist/main.js')], {
    env: { ...process.env, DATABASE_URL: url, GRPC_HOST: '127.0.0.1', GRPC_PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const address = `127.0.0.1:${port}`;
  await waitForServing(address, 30_000);
  return { address, child };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/**
 * A collector sending the beats of its servers as HeartbeatBatch calls: what
 * is due is sent every flushMs, at most batchSize beats and one beat per
 * server per call, one call in flight (as the client library's recorder does).
 */
class Collector {
  private queue: Array<{ request: statussync.HeartbeatRequest; resolve: () => void; reject: (err: Error) => void }> = [];
  private inFlight = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly client: statussync.StatusSyncServiceClient,
    private readonly metadata: grpc.Metadata,
    private readonly o: Options,
    private readonly onAnswer: (res: statussync.HeartbeatResponse) => void,
    private readonly callLatenciesMs: number[],
  ) {
    this.timer = setInterval(() => this.send(), o.flushMs);
  }

  add(request: statussync.HeartbeatRequest): Promise<void> {
    return new Promise((resolve, reject) => this.queue.push({ request, resolve, reject }));
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private send(): void {
    if (this.inFlight || this.queue.length === 0) return;
    // A backlog longer than one period holds a second beat of a server: it waits for the next call.
    const servers = new Set<string>();
    let n = 0;
    while (n < this.queue.length && n < this.o.batchSize && !servers.has(this.queue[n].request.serverId)) {
      servers.add(this.queue[n++].request.serverId);
    }
    const batch = this.queue.splice(0, n);
    this.inFlight = true;
    const started = performance.now();
    const request = statussync.HeartbeatBatchRequest.fromPartial({ heartbeats: batch.map((b) => b.request) });
    this.client.heartbeatBatch(request, this.metadata, { deadline: Date.now() + CALL_DEADLINE_MS }, (err, res) => {
      this.inFlight = false;
      this.callLatenciesMs.push(performance.now() - started);
      if (err) {
        batch.forEach((b) => b.reject(err));
      } else {
        const unknown = new Set(res.unknownServerIndexes);
        batch.forEach((b, i) => {
          if (unknown.has(i)) return b.reject(new Error('unknown server'));
          this.onAnswer(res.results[i]);
          b.resolve();
        });
      }
      // Behind: send the next call at once rather than at the next tick.
      if (this.queue.length >= this.o.batchSize) this.send();
    });
  }
}

async function runService(o: Options, f: Fixture, flipped: Set<number>, mode: 'service' | 'batch'): Promise<ServiceRunResult> {
  const { address, child } = await startServiceProcess(f.url, o.profileDir);
  const client = new statussync.StatusSyncServiceClient(address, grpc.credentials.createInsecure());
  const metadata = f.tokens.map((token) => {
    const m = new grpc.Metadata();
    m.set('authorization', `Bearer ${token}`);
    return m;
  });
  let transitions = 0;
  const callLatencies: number[] = [];
  const counted = (res: statussync.HeartbeatResponse) => {
    if (res.transitionRecorded) transitions += 1;
  };
  const collectors = mode === 'batch' ? metadata.map((m) => new Collector(client, m, o, counted, callLatencies)) : [];
  try {
    const request = (beat: Beat) =>
      statussync.HeartbeatRequest.fromPartial({
        serverId: f.serverIds[beat.server],
        state: statussync.ServerState.SERVER_STATE_RUNNING,
        health: beat.degraded ? statussync.ServerHealth.SERVER_HEALTH_DEGRADED : statussync.ServerHealth.SERVER_HEALTH_HEALTHY,
        cpuUsage: beat.cpu,
        memoryUsage: 256,
        responseTimeMs: 3,
        uptimeSeconds: '3600',
      });
    const single = (beat: Beat) =>
      new Promise<void>((resolve, reject) => {
        const started = performance.now();
        client.heartbeat(request(beat), metadata[beat.server % metadata.length], { deadline: Date.now() + CALL_DEADLINE_MS }, (err, res) => {
          callLatencies.push(performance.now() - started);
          if (err) return reject(err);
          counted(res);
          resolve();
        });
      });
    const send = mode === 'service' ? single : (beat: Beat) => collectors[beat.server % collectors.length].add(request(beat));
    // Warm-up outside the measurement: connections, key cache, plans.
    await Promise.all(f.serverIds.slice(0, 200).map((_, i) => send({ server: i, degraded: false, cpu: 0 })));
    callLatencies.length = 0;
    const meter = await CpuMeter.start(f.url, SERVICE_APPLICATION_NAME, child.pid);
    const result = await runSchedule(o, flipped, mode, send);
    return { ...result, cpu: await meter.stop(), transitions, callLatenciesMs: Float64Array.from(callLatencies).sort() };
  } finally {
    collectors.forEach((c) => c.stop());
    client.close();
    await stopProcess(child);
  }
}

async function runDirect(o: Options, f: Fixture, flipped: Set<number>, naive: boolean): Promise<RunResult> {
  const applicationName = naive ? 'bench-naive' : 'bench-update';
  const pool = new Pool({ connectionString: f.url, max: POOL_SIZE, application_name: applicationName });
  try {
    const update = `UPDATE mcp_servers SET status = $2, health = $3, cpu_usage = $4, memory_usage = $5,
                      last_heartbeat_at = clock_timestamp(), last_activity_at = clock_timestamp(), last_health_check = clock_timestamp()
                    WHERE id = $1`;
    const insert = `INSERT INTO mcp_server_status_logs (server_id, previous_status, current_status, source, response_time_ms, uptime_seconds)
                    VALUES ($1, $2, $2, 'heartbeat', 3, 3600)`;
    const send = async (beat: Beat) => {
      const id = f.serverIds[beat.server];
      const health = beat.degraded ? 'DEGRADED' : 'HEALTHY';
      if (!naive) {
        await pool.query({ name: 'beat-update', text: update, values: [id, 'RUNNING', health, beat.cpu, 256] });
        return;
      }
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        await c.query({ name: 'beat-update', text: update, values: [id, 'RUNNING', health, beat.cpu, 256] });
        await c.query({ name: 'beat-insert', text: insert, values: [id, JSON.stringify({ state: 'RUNNING', health })] });
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        c.release();
      }
    };
    await Promise.all(f.serverIds.slice(0, 200).map((_, i) => send({ server: i, degraded: false, cpu: 0 })));
    const meter = await CpuMeter.start(f.url, applicationName);
    const result = await runSchedule(o, flipped, naive ? 'naive' : 'update', send);
    return { ...result, cpu: await meter.stop() };
  } finally {
    await pool.end();
  }
}

// ------------------------------------------------------------------ main

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '–';
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const adminUrl = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const dbName = uniqueDatabaseName('bench_heartbeat');
  const flipCount = Math.round((o.servers * o.flipPercent) / 100);
  // Every k-th server flips, spread over the whole schedule.
  const flipped = new Set(Array.from({ length: flipCount }, (_, i) => Math.floor((i * o.servers) / flipCount)));
  process.stderr.write(
    `heartbeat bench: ${o.servers} servers every ${o.periodS} s = ${fmt(o.servers / o.periodS, 0)} beats/s for ${o.durationS} s; ` +
      `${flipCount} servers flip HEALTHY -> DEGRADED mid-run; ${o.callers} calling service account(s); batch path: flush every ${o.flushMs} ms, ` +
      `at most ${o.batchSize} beats per call; ${os.cpus().length} CPUs; database ${dbName}\n`,
  );
  const f = await prepare(adminUrl, dbName, o);
  const results: Array<(RunResult | ServiceRunResult) & { historyRows: number; steadyRows?: number; load: [number, number] }> = [];
  const steadyIds = f.serverIds.filter((_, i) => !flipped.has(i));
  try {
    for (const p of o.paths) {
      await resetFleet(f.url);
      const since = new Date(Date.now() - 1_000); // server clock skew margin; the fleet reset writes no history
      const before = await historyRows(f.url, since);
      const loadBefore = os.loadavg()[0];
      const r = p === 'service' || p === 'batch' ? await runService(o, f, flipped, p) : await runDirect(o, f, flipped, p === 'naive');
      const load: [number, number] = [loadBefore, os.loadavg()[0]];
      const written = (await historyRows(f.url, since)) - before;
      const steadyRows = 'transitions' in r ? await historyRows(f.url, since, steadyIds) : undefined;
      results.push({ ...r, historyRows: written, steadyRows, load });
      if (r.errors.size > 0) process.stderr.write(`${p} errors: ${JSON.stringify(Object.fromEntries(r.errors))}\n`);
    }
    const update = results.find((r) => r.path === 'update');
    const rows: string[] = [];
    rows.push(
      '| path | offered beats | completed | failed | dropped | beats/s | p50 ms | p99 ms | max ms | RPCs | RPC p50 / p99 ms | CPU µs/beat: service / PG | history rows | rows per transition | steady-server rows | p99 vs update | load avg (1 min) before → after |',
    );
    rows.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of results) {
      const p99 = percentile(r.latenciesMs, 99);
      const calls = 'callLatenciesMs' in r ? r.callLatenciesMs : undefined;
      rows.push(
        `| ${r.path} | ${r.offered} | ${r.completed} | ${r.failed} | ${r.dropped} | ${fmt(r.completed / r.seconds, 0)} | ` +
          `${fmt(percentile(r.latenciesMs, 50), 2)} | ${fmt(p99, 2)} | ${fmt(r.latenciesMs[r.latenciesMs.length - 1] ?? NaN, 1)} | ` +
          `${calls ? calls.length : '–'} | ${calls ? `${fmt(percentile(calls, 50), 2)} / ${fmt(percentile(calls, 99), 2)}` : '–'} | ` +
          `${calls ? fmt((r.cpu.service / r.completed) * 1e6, 0) : '–'} / ${fmt((r.cpu.postgres / r.completed) * 1e6, 0)} | ` +
          `${r.historyRows} | ${fmt(r.historyRows / r.transitionsOffered, 2)} | ${r.steadyRows ?? '–'} | ` +
          `${update ? `${fmt(p99 / percentile(update.latenciesMs, 99), 2)}×` : '–'} | ${fmt(r.load[0], 2)} → ${fmt(r.load[1], 2)} |`,
      );
    }
    process.stdout.write(`${rows.join('\n')}\n\n`);
    for (const r of results) {
      if (!('transitions' in r)) continue;
      process.stdout.write(
        `${r.path}: ${r.transitionsOffered} real transitions sent (flipped servers that beat after the flip), ` +
          `${r.transitions} acknowledged as recorded, ${r.failed} beats failed, ` +
          `${r.historyRows} history rows written (${fmt(r.historyRows / r.transitionsOffered, 2)} per transition sent); ` +
          `rows for the ${steadyIds.length} steady servers: ${r.steadyRows}\n`,
      );
    }
  } finally {
    if (!o.keep) await dropDatabase(adminUrl, dbName);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
