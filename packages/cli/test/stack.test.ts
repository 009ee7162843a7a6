import { freePort } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskUrl, prettyLine } from '../src/stack-log';
import { buildCli, runCli, spawnNode, STACK, type Running } from './helpers';

let db: TestDatabase;

beforeAll(async () => {
  buildCli();
  db = await freshDatabase();
});
afterAll(async () => db?.drop());

async function startStack(port: number): Promise<{ stack: Running; devUserId: string; apiKey: string }> {
  const stack = spawnNode(STACK, [], { DATABASE_URL: db.url, MCP_CONNECTION_LOG_PORT: String(port), MCP_PG_PORT: undefined });
  await stack.waitFor(() => /ready in/.test(stack.stdout()), 'the stack to be ready', 60_000);
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
    const { stack, devUserId, apiKey } = await startStack(port);
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
    const again = await startStack(port);
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
