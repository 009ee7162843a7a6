import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverServices, portEnvName } from '../src/stack';
import { maskUrl, prettyLine } from '../src/stack-log';
import { buildCli, runCli, spawnNode, STACK, type Running } from './helpers';

let db: TestDatabase;
/** Every stack started, so that a failed test does not leave one (and its PostgreSQL) running. */
const stacks: Running[] = [];

beforeAll(async () => {
  buildCli();
  db = await freshDatabase();
});
afterAll(async () => {
  await stopAllStacks();
  await db?.drop();
});

async function stopAllStacks(): Promise<void> {
  await Promise.all(stacks.map((stack) => stopStack(stack)));
}

/** A free port for every built service, as the MCP_<NAME>_PORT variables; `connectionLog` is its address. */
async function freeServicePorts(): Promise<{ env: NodeJS.ProcessEnv; connectionLog: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const { name } of discoverServices()) env[portEnvName(name)] = String(await freePort());
  return { env, connectionLog: `127.0.0.1:${env[portEnvName('connection-log')]}` };
}

async function startStack(env: NodeJS.ProcessEnv): Promise<{ stack: Running; devUserId: string; apiKey: string }> {
  const stack = spawnNode(STACK, [], env);
  stacks.push(stack);
  // Generous: the first start on an empty data directory runs initdb.
  await stack.waitFor(() => /ready in/.test(stack.stdout()), 'the stack to be ready', 120_000);
  const devUserId = /MCP_DEV_USER_ID=([0-9a-f-]{36})/.exec(stack.stdout())![1];
  const apiKey = /MCP_API_KEY=(\S+)/.exec(stack.stdout())![1];
  return { stack, devUserId, apiKey };
}

async function stopStack(stack: Running): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  stack.child.kill('SIGTERM');
  const { code } = await stack.exited;
  return { code, ms: Date.now() - started };
}

describe('npm start (stack.js) with DATABASE_URL', () => {
  it('starts every built service, prints the box, serves mcpctl demo, and stops with exit 0 on SIGTERM', async () => {
    const port = await freePort();
    const { stack, devUserId, apiKey } = await startStack({ DATABASE_URL: db.url, MCP_CONNECTION_LOG_PORT: String(port), MCP_PG_PORT: undefined });
    const out = stack.stdout();
    expect(out).toContain('schema is up to date');
    expect(out).toMatch(/connection-log is SERVING on 127\.0\.0\.1:\d+/);
    // The box: each service with its address, the database (password masked), the dev user, examples.
    expect(out).toContain('╭');
    expect(out).toMatch(new RegExp(`connection-log\\s+127\\.0\\.0\\.1:${port}`));
    expect(out).toContain(maskUrl(db.url));
    expect(out).toContain(`npm run mcpctl -- --address 127.0.0.1:${port} demo --user-id ${devUserId}`);
    // Service log lines are prefixed and pretty, not raw JSON.
    expect(out).toMatch(/^connection-log +\| \d\d:\d\d:\d\d\.\d{3} INFO +listening/m);
    expect(out).not.toMatch(/^connection-log +\| \{/m);

    const demo = await runCli(['--address', `127.0.0.1:${port}`, 'demo', '--user-id', devUserId], { MCP_API_KEY: apiKey });
    expect(demo.code).toBe(0);
    expect(demo.stdout).toContain('usage_recorded');

    const { code, ms } = await stopStack(stack);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(15_000);
    expect(stack.stdout()).toContain('connection-log stopped');
    expect(stack.stdout()).toContain('bye (exit 0)');

    const pg = new Client({ connectionString: db.url });
    await pg.connect();
    try {
      const { rows } = await pg.query(
        `SELECT u.username, r.role FROM users u JOIN user_roles r ON r.user_id = u.id WHERE u.id = $1`,
        [devUserId],
      );
      expect(rows).toEqual([{ username: 'dev', role: 'admin' }]);
    } finally {
      await pg.end();
    }

    // A second start finds the same development user.
    const again = await startStack({ DATABASE_URL: db.url, MCP_CONNECTION_LOG_PORT: String(port), MCP_PG_PORT: undefined });
    expect(again.devUserId).toBe(devUserId);
    expect((await stopStack(again.stack)).code).toBe(0);
  });

  it('refuses to start when a service port is taken, with exit code 1', async () => {
    const net = await import('node:net');
    const blocker = net.createServer();
    const port = await freePort();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    try {
      const stack = spawnNode(STACK, [], { DATABASE_URL: db.url, MCP_CONNECTION_LOG_PORT: String(port) });
      const { code } = await stack.exited;
      expect(code).toBe(1);
      expect(stack.stdout()).toContain(`port ${port} for connection-log is taken`);
    } finally {
      blocker.close();
    }
  });

  it('shows service JSON log lines as text', () => {
    const line = JSON.stringify({ level: 'warn', time: '2025-01-01T12:00:00.000Z', service: 'x', msg: 'not ready', err: { message: 'boom' }, n: 1 });
    expect(prettyLine(line)).toMatch(/^\d\d:\d\d:\d\d\.000 WARN  not ready err="boom" n=1$/);
    expect(prettyLine('plain text')).toBe('plain text');
    expect(maskUrl('postgres://u:secret@h:5432/d')).toBe('postgres://u:****@h:5432/d');
  });
});

describe('npm start (stack.js) on the embedded PostgreSQL', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-stack-data-'));
  });
  afterAll(async () => {
    await stopAllStacks();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  /** The embedded cluster is down: its lock file is gone and nothing answers on its port. */
  async function expectPostgresStopped(url: string): Promise<void> {
    expect(fs.existsSync(path.join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    await expect(client.connect()).rejects.toThrow(/ECONNREFUSED/);
  }

  it('creates the cluster in MCP_DATA_DIR, prints a dev admin key that works, stops PostgreSQL, and reuses the key on the next start', async () => {
    const ports = await freeServicePorts();
    const pgPort = await freePort();
    const pgUrl = `postgres://postgres:postgres@127.0.0.1:${pgPort}/postgres`;
    const clusterDir = path.join(dataDir, 'postgres');
    const keyFile = path.join(dataDir, 'dev-api-key');
    // No DATABASE_URL of any kind reaches the stack: it must start its own PostgreSQL.
    const env = { ...ports.env, DATABASE_URL: undefined, TEST_DATABASE_URL: undefined, MCP_DATA_DIR: dataDir, MCP_PG_PORT: String(pgPort) };

    const first = await startStack(env);
    let out = first.stack.stdout();
    expect(out).toContain(`creating a PostgreSQL cluster in ${clusterDir} (first run only)`);
    expect(out).toContain(`embedded PostgreSQL is up on 127.0.0.1:${pgPort}`);
    expect(out).toContain(`${maskUrl(pgUrl)} (embedded, data in ${clusterDir})`);
    expect(out).toContain('issued an API key for the development user');
    expect(fs.readFileSync(keyFile, 'utf8').trim()).toBe(first.apiKey);

    const demo = await runCli(['--address', ports.connectionLog, 'demo', '--json', '--user-id', first.devUserId], { MCP_API_KEY: first.apiKey });
    expect(demo.stderr).toBe('');
    expect(demo.code).toBe(0);
    const recorded = JSON.parse(demo.stdout);
    expect(recorded.events).toHaveLength(5);

    const stopped = await stopStack(first.stack);
    expect(stopped.code).toBe(0);
    out = first.stack.stdout();
    expect(out).toContain('embedded PostgreSQL stopped');
    expect(out).toContain('bye (exit 0)');
    await expectPostgresStopped(pgUrl);

    // Second start on the same directory: same cluster, same user, same key, and the demo's rows are still there.
    const second = await startStack(env);
    out = second.stack.stdout();
    expect(out).toContain(`starting embedded PostgreSQL (data ${clusterDir})`);
    expect(out).toContain('schema is up to date');
    expect(out).toContain(`reusing the development API key kept in ${keyFile}`);
    expect(second.apiKey).toBe(first.apiKey);
    expect(second.devUserId).toBe(first.devUserId);

    const again = await runCli(['--address', ports.connectionLog, 'demo', '--json', '--user-id', second.devUserId], { MCP_API_KEY: second.apiKey });
    expect(again.code).toBe(0);
    const reused = JSON.parse(again.stdout);
    expect(reused.agent.id).toBe(recorded.agent.id);
    expect(reused.connection.id).toBe(recorded.connection.id);

    expect((await stopStack(second.stack)).code).toBe(0);
    await expectPostgresStopped(pgUrl);
  }, 300_000);
});
