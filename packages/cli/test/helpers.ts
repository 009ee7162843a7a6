import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { connectionLogEntities, createConnectionLogService } from '@mcp/connection-log';
import { createDataSource } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import { provisionPrincipal, startService, type RunningService } from '@mcp/runtime';
import { Client } from 'pg';
import { connectionLogClient, type ConnectionLogClient } from '../src/grpc';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const MCPCTL = path.join(REPO_ROOT, 'packages', 'cli', 'dist', 'mcpctl.js');
export const STACK = path.join(REPO_ROOT, 'packages', 'cli', 'dist', 'stack.js');

/** The tests run the built CLI, as users do. */
export function buildCli(): void {
  execFileSync('npx', ['tsc', '-p', 'packages/cli/tsconfig.build.json'], { cwd: REPO_ROOT, stdio: 'inherit' });
}

/** Environment for child processes: nothing from the developer's shell that changes where mcpctl calls. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...extra };
  for (const key of ['MCP_CONNECTION_LOG_ADDRESS', 'MCP_DEV_USER_ID', 'MCP_API_KEY', 'npm_lifecycle_event']) if (!(key in extra)) delete env[key];
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
  return env;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MCPCTL, ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A long-running child whose output is collected as it comes. */
export interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(predicate: () => boolean, what: string, timeoutMs?: number): Promise<void>;
}

export function spawnNode(script: string, args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(process.execPath, [script, ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async waitFor(predicate, what, timeoutMs = 30_000) {
      const until = Date.now() + timeoutMs;
      while (!predicate()) {
        if (done) throw new Error(`process exited while waiting for ${what}\nstdout:\n${out}\nstderr:\n${err}`);
        if (Date.now() > until) throw new Error(`timed out waiting for ${what}\nstdout:\n${out}\nstderr:\n${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

export interface Service {
  db: TestDatabase;
  pg: Client;
  service: RunningService;
  address: string;
  client: ConnectionLogClient;
  /** An admin's API key, for mcpctl (MCP_API_KEY) and direct calls. */
  apiKey: string;
  close(): Promise<void>;
}

/** A fresh database and the connection-log service in-process on a free port (as services/connection-log/test/harness.ts). */
export async function startConnectionLog(reuse?: { db: TestDatabase; port: number }): Promise<Service> {
  const db = reuse?.db ?? (await freshDatabase());
  const service = await startService({
    serviceName: 'connection-log',
    defaultPort: 0,
    env: { DATABASE_URL: db.url, GRPC_HOST: '127.0.0.1', GRPC_PORT: String(reuse?.port ?? 0),
      // Open tails hold a draining server until the grace period ends.
      SHUTDOWN_GRACE_MS: '1000',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    },
    createDataSource: (url) => createDataSource({ url, entities: connectionLogEntities, poolSize: 8 }),
    createServices: (deps) => [createConnectionLogService(deps)],
  });
  const until = Date.now() + 15_000;
  while (!service.server.isServing()) {
    if (Date.now() > until) throw new Error('service never became SERVING');
    await new Promise((r) => setTimeout(r, 50));
  }
  const address = `127.0.0.1:${service.server.port}`;
  const pg = new Client({ connectionString: db.url });
  await pg.connect();
  const client = connectionLogClient(address);
  const { token: apiKey } = await provisionPrincipal(pg, { username: 'cli-test-admin', roles: ['admin'] });
  const dropDatabase = !reuse;
  return {
    db,
    pg,
    service,
    address,
    client,
    apiKey,
    close: async () => {
      client.close();
      await pg.end();
      await service.shutdown('test done');
      if (dropDatabase) await db.drop();
    },
  };
}

/** Users belong to the security layer: tests insert them with SQL. */
export async function insertUser(pg: Client, name: string): Promise<string> {
  const { rows } = await pg.query('INSERT INTO users (username, email) VALUES ($1, $2) RETURNING id', [name, `${name}@example.test`]);
  return rows[0].id as string;
}
