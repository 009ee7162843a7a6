/**
 * What every scenario starts from: its own database (a copy of the migrated
 * template) on the suite's cluster, principals, a pool of its own, the
 * services it runs as child processes, and clients of them — all torn down
 * by close(), which also leaves the cluster running for the next scenario.
 */
import {
  createAuditClient,
  createConnectionLogClient,
  createRetentionClient,
  createStatusSyncClient,
  type AuditClient,
  type ClientOptions,
  type ConnectionLogClient,
  type RetentionClient,
  type StatusSyncClient,
} from '@mcp/client';
import type { Pool } from 'pg';
import { openPool } from './database';
import { provisionPrincipals, type Principals } from './fixtures';
import { PostgresCluster } from './postgres-cluster';
import { killAll, ServiceProcess, type ServiceName, type StartOptions } from './service-process';

/** Client options for scenarios: plaintext on 127.0.0.1, quick retries. */
const CLIENT_DEFAULTS: ClientOptions = { credentials: 'insecure', retry: { initialBackoffMs: 50, maxBackoffMs: 1_000 } };

export class Scenario {
  private readonly running = new Map<ServiceName, ServiceProcess>();
  private readonly clients: Array<{ close(): void }> = [];

  private constructor(
    readonly cluster: PostgresCluster,
    readonly database: { name: string; url: string; drop(): Promise<void> },
    readonly pool: Pool,
    readonly principals: Principals,
  ) {}

  static async open(prefix: string): Promise<Scenario> {
    const cluster = PostgresCluster.fromEnv();
    const database = await cluster.createDatabase(prefix.replace(/[^a-z0-9_]/g, '_'));
    const pool = openPool(database.url);
    return new Scenario(cluster, database, pool, await provisionPrincipals(pool, prefix));
  }

  /** Starts services (in parallel) against this scenario's database. */
  async start(names: ServiceName[], options: Omit<StartOptions, 'databaseUrl'> = {}): Promise<void> {
    const started = await Promise.all(names.map((name) => ServiceProcess.start(name, { databaseUrl: this.database.url, ...options })));
    for (const s of started) this.running.set(s.name, s);
  }

  service(name: ServiceName): ServiceProcess {
    const s = this.running.get(name);
    if (!s) throw new Error(`${name} was not started`);
    return s;
  }

  /** The current process of each service started (a restart replaces it). */
  get services(): ServiceProcess[] {
    return [...this.running.values()];
  }

  /** Stops (SIGTERM, or SIGKILL) a service and starts a new process of it on the same port. */
  async restart(name: ServiceName, how: 'SIGTERM' | 'SIGKILL'): Promise<{ exit: Awaited<ServiceProcess['exited']>; service: ServiceProcess }> {
    const old = this.service(name);
    const exit = how === 'SIGTERM' ? await old.stop() : await old.kill();
    const service = await old.restart();
    this.running.set(name, service);
    return { exit, service };
  }

  connectionLogClient(token = this.principals.writer.token, options: ClientOptions = {}): ConnectionLogClient {
    return this.track(createConnectionLogClient({ ...CLIENT_DEFAULTS, address: this.service('connection-log').address, apiKey: token, ...options }));
  }

  statusSyncClient(token = this.principals.writer.token, options: ClientOptions = {}): StatusSyncClient {
    return this.track(createStatusSyncClient({ ...CLIENT_DEFAULTS, address: this.service('status-sync').address, apiKey: token, ...options }));
  }

  auditClient(token = this.principals.writer.token, options: ClientOptions = {}): AuditClient {
    return this.track(createAuditClient({ ...CLIENT_DEFAULTS, address: this.service('audit').address, apiKey: token, ...options }));
  }

  retentionClient(token = this.principals.operator.token, options: ClientOptions = {}): RetentionClient {
    return this.track(createRetentionClient({ ...CLIENT_DEFAULTS, address: this.service('retention').address, apiKey: token, ...options }));
  }

  closeClients(): void {
    for (const c of this.clients.splice(0)) c.close();
  }

  async close(): Promise<void> {
    this.closeClients();
    await killAll(this.running.values());
    if (!(await this.cluster.isRunning())) await this.cluster.start();
    await this.pool.end();
    await this.database.drop();
  }

  private track<C extends { close(): void }>(client: C): C {
    this.clients.push(client);
    return client;
  }
}
