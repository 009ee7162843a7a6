import * as grpc from '@grpc/grpc-js';
import { freePort } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import { connectionlog } from '@mcp/proto';
import { provisionPrincipal, waitForHealth, waitForServing } from '@mcp/runtime';
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MAIN = path.resolve(__dirname, '../dist/main.js');
let db: TestDatabase;
let pg: Client;
let connectionId: string;
let metadata: grpc.Metadata;

beforeAll(async () => {
  db = await freshDatabase();
  pg = new Client({ connectionString: db.url });
  await pg.connect();
  const { rows } = await pg.query(
    `WITH u AS (INSERT INTO users (username, email) VALUES ('life', 'life@example.test') RETURNING id),
          a AS (INSERT INTO agents (user_id, name) SELECT id, 'life-agent' FROM u RETURNING id, user_id),
          s AS (INSERT INTO mcp_servers (name, owner_id) SELECT 'life-server', user_id FROM a RETURNING id)
     INSERT INTO agent_mcp_connections (agent_id, mcp_server_instance_id) SELECT a.id, s.id FROM a, s RETURNING id`,
  );
  connectionId = rows[0].id;
  const { token } = await provisionPrincipal(pg, { username: 'lifecycle-writer', roles: ['service'] });
  metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
});
afterAll(async () => {
  await pg?.end();
  await db?.drop();
});

async function startChild(env: Record<string, string>): Promise<{ child: ChildProcess; address: string; exited: Promise<number | null> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, GRPC_HOST: '127.0.0.1', GRPC_PORT: String(port), LOG_LEVEL: 'warn', SHUTDOWN_GRACE_MS: '10000', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, address: `127.0.0.1:${port}`, exited };
}

function recordBatch(client: connectionlog.ConnectionLogServiceClient, n: number): Promise<connectionlog.RecordEventsResponse> {
  const events = Array.from({ length: n }, () => ({ connectionId, eventType: connectionlog.EventType.EVENT_TYPE_USAGE_RECORDED, requestData: '{"k":"v"}' }));
  return new Promise((resolve, reject) =>
    client.recordEvents(connectionlog.RecordEventsRequest.fromPartial({ events }), metadata, { deadline: Date.now() + 30_000 }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

describe('process lifecycle', () => {
  it('SIGTERM: in-flight calls all complete, later calls are refused, exit code 0, nothing acknowledged is lost', async () => {
    const { child, address, exited } = await startChild({ DATABASE_URL: db.url });
    await waitForServing(address);
    const client = new connectionlog.ConnectionLogServiceClient(address, grpc.credentials.createInsecure());
    const before = (await pg.query('SELECT count(*)::int AS n FROM agent_mcp_connection_logs')).rows[0].n;

    const inFlight = Array.from({ length: 20 }, () => recordBatch(client, 1000));
    await new Promise((r) => setTimeout(r, 30));
    child.kill('SIGTERM');
    const results = await Promise.allSettled(inFlight);
    const acknowledged = results.filter((r) => r.status === 'fulfilled');
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(acknowledged).toHaveLength(20);

    const late = await recordBatch(client, 1).then(
      () => 'accepted',
      (err: grpc.ServiceError) => err.code,
    );
    expect(late).toBe(grpc.status.UNAVAILABLE);
    expect(await exited).toBe(0);
    client.close();
    const after = (await pg.query('SELECT count(*)::int AS n FROM agent_mcp_connection_logs')).rows[0].n;
    expect(after - before).toBe(20 * 1000);
  });

  it('starts without a reachable database: NOT_SERVING, UNAVAILABLE answers, then recovers when it appears', async () => {
    // The service is pointed at a port where nothing listens yet; later a TCP
    // proxy to the real database opens there, as a database coming up would.
    const proxyPort = await freePort();
    const target = new URL(db.url);
    const { child, address, exited } = await startChild({ DATABASE_URL: db.url.replace(/:\d+\//, `:${proxyPort}/`) });
    const proxy = net.createServer((inbound) => {
      const outbound = net.connect(Number(target.port || 5432), target.hostname);
      inbound.pipe(outbound).pipe(inbound);
      const close = () => (inbound.destroy(), outbound.destroy());
      inbound.on('error', close);
      outbound.on('error', close);
    });
    const client = new connectionlog.ConnectionLogServiceClient(address, grpc.credentials.createInsecure());
    try {
      // Polled rather than slept: start-up takes a while on a loaded machine.
      await waitForHealth(address, 'NOT_SERVING', 20_000);
      const code = await recordBatch(client, 1).then(
        () => 'accepted',
        (err: grpc.ServiceError) => err.code,
      );
      expect(code).toBe(grpc.status.UNAVAILABLE);

      await new Promise<void>((r) => proxy.listen(proxyPort, '127.0.0.1', r));
      await waitForServing(address, 20_000);
      const res = await recordBatch(client, 3);
      expect(res.storedCount).toBe(3);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      client.close();
      child.kill('SIGKILL'); // no-op once it has exited; keeps a failed assertion above from leaking the process
      proxy.close();
    }
  });
});
