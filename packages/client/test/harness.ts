/**
 * Test setup in the manner of @mcp/runtime's startServiceHarness: a fresh
 * migrated database, the real connection-log service started in-process
 * through startService (so through the real guard, with real API keys), and
 * fixtures. Differs in one way: the service can reach its database through
 * a TCP proxy the test controls, to cut and restore the database mid-stream.
 * The real audit service can join it on the same database (startAuditService).
 */
import { auditEntities, createAuditService } from '@mcp/audit';
import { createDataSource, freePort } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import { connectionLogEntities, createConnectionLogService } from '@mcp/connection-log';
import { provisionPrincipal, type RunningService } from '@mcp/runtime';
import { startInProcessService } from '@mcp/runtime/dist/testing';
import * as net from 'node:net';
import { Client } from 'pg';
import { createConnectionLogClient, type ClientOptions, type ConnectionLogClient } from '../src';

/** A TCP proxy that can refuse connections (cut), accept them again (restore), and swallow the answers. */
export class TcpProxy {
  private server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** While true, bytes from the target back to the client are discarded (answers are lost). */
  swallowResponses = false;

  private constructor(
    readonly port: number,
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    this.server = this.createServer();
  }

  static async start(targetHost: string, targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(await freePort(), targetHost, targetPort);
    await proxy.listen();
    return proxy;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  private createServer(): net.Server {
    return net.createServer((inbound) => {
      const outbound = net.connect(this.targetPort, this.targetHost);
      this.sockets.add(inbound);
      this.sockets.add(outbound);
      inbound.on('data', (chunk) => outbound.write(chunk));
      outbound.on('data', (chunk) => {
        if (!this.swallowResponses) inbound.write(chunk);
      });
      const close = () => {
        inbound.destroy();
        outbound.destroy();
        this.sockets.delete(inbound);
        this.sockets.delete(outbound);
      };
      inbound.on('close', close);
      outbound.on('close', close);
      inbound.on('error', close);
      outbound.on('error', close);
    });
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** Kills every open connection (both ends see a reset). */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /** As a stopped server: open connections die, new ones are refused. */
  async cut(): Promise<void> {
    if (!this.server.listening) return this.dropConnections();
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.dropConnections();
    await closed;
  }

  /** As a started server: connections are accepted again, on the same port. */
  async restore(): Promise<void> {
    if (this.server.listening) return;
    this.server = this.createServer();
    await this.listen();
  }

  async close(): Promise<void> {
    await this.cut().catch(() => undefined);
  }
}

export interface Fixture {
  userId: string;
  agentId: string;
  serverId: string;
  connectionId: string;
}

/** A user, agent, server and connection (SQL: they are the other services' rows). */
export async function createFixture(pg: Client, name: string): Promise<Fixture> {
  const { rows } = await pg.query(
    `WITH u AS (INSERT INTO users (username, email) VALUES ($1, $1 || '@example.test') RETURNING id),
          a AS (INSERT INTO agents (user_id, name) SELECT id, $1 || '-agent' FROM u RETURNING id, user_id),
          s AS (INSERT INTO mcp_servers (name, owner_id) SELECT $1 || '-server', user_id FROM a RETURNING id),
          c AS (INSERT INTO agent_mcp_connections (agent_id, mcp_server_instance_id) SELECT a.id, s.id FROM a, s RETURNING id)
     SELECT (SELECT id FROM u) AS "userId", (SELECT id FROM a) AS "agentId", (SELECT id FROM s) AS "serverId", (SELECT id FROM c) AS "connectionId"`,
    [name],
  );
  return rows[0];
}

export interface StoredCount {
  rows: number;
  distinctIds: number;
  /** Ids stored more than once (must be 0). */
  duplicatedIds: number;
}

export interface ConnectionLogEnv {
  db: TestDatabase;
  /** Direct superuser connection to the test database (not through the proxy). */
  pg: Client;
  service: RunningService;
  address: string;
  /** Present with `viaDatabaseProxy`: the service's only way to its database. */
  dbProxy?: TcpProxy;
  /** Key of a principal with the `service` role (connection_logs:write + read), as an agent gateway has. */
  writerToken: string;
  writerUserId: string;
  adminToken: string;
  fixture: Fixture;
  /** A client of this service (closed by close()). */
  client(options?: ClientOptions): ConnectionLogClient;
  count(connectionId?: string): Promise<StoredCount>;
  close(): Promise<void>;
}

/** The real audit service on the given database (shut it down with `service.shutdown`). */
export function startAuditService(databaseUrl: string): Promise<{ service: RunningService; address: string }> {
  return startInProcessService({
    serviceName: 'audit',
    databaseUrl,
    createDataSource: (u) => createDataSource({ url: u, entities: auditEntities, poolSize: 4 }),
    createServices: (deps) => [createAuditService(deps)],
  });
}

export async function startConnectionLogEnv(options: { viaDatabaseProxy?: boolean; env?: Record<string, string> } = {}): Promise<ConnectionLogEnv> {
  const db = await freshDatabase();
  const url = new URL(db.url);
  const dbProxy = options.viaDatabaseProxy ? await TcpProxy.start(url.hostname, Number(url.port || 5432)) : undefined;
  const serviceUrl = new URL(db.url);
  if (dbProxy) {
    serviceUrl.hostname = '127.0.0.1';
    serviceUrl.port = String(dbProxy.port);
  }
  const { service, address } = await startInProcessService({
    serviceName: 'connection-log',
    databaseUrl: serviceUrl.toString(),
    env: options.env,
    createDataSource: (u) => createDataSource({ url: u, entities: connectionLogEntities, poolSize: 8 }),
    createServices: (deps) => [createConnectionLogService(deps)],
  });
  const pg = new Client({ connectionString: db.url });
  await pg.connect();
  const admin = await provisionPrincipal(pg, { username: 'client-test-admin', roles: ['admin'] });
  const writer = await provisionPrincipal(pg, { username: 'client-test-writer', roles: ['service'] });
  const fixture = await createFixture(pg, 'client-test');
  const clients: ConnectionLogClient[] = [];
  return {
    db,
    pg,
    service,
    address,
    dbProxy,
    writerToken: writer.token,
    writerUserId: writer.userId,
    adminToken: admin.token,
    fixture,
    client: (clientOptions = {}) => {
      const c = createConnectionLogClient({ address, apiKey: writer.token, credentials: 'insecure', ...clientOptions });
      clients.push(c);
      return c;
    },
    count: async (connectionId = fixture.connectionId) => {
      const { rows } = await pg.query(
        `SELECT count(*)::int AS rows, count(DISTINCT id)::int AS "distinctIds",
                (SELECT count(*)::int FROM (SELECT id FROM agent_mcp_connection_logs WHERE connection_id = $1 GROUP BY id HAVING count(*) > 1) d) AS "duplicatedIds"
           FROM agent_mcp_connection_logs WHERE connection_id = $1`,
        [connectionId],
      );
      return rows[0];
    },
    close: async () => {
      for (const c of clients) c.close();
      await pg.end();
      await service.shutdown('test done');
      await dbProxy?.close();
      await db.drop();
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true, or fails after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
