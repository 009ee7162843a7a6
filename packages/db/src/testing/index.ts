import { createDatabase, dropDatabase, uniqueDatabaseName } from './databases';
import { TEST_ENV } from './global-setup';

export { createDatabase, databaseUrl, dropDatabase, uniqueDatabaseName } from './databases';
export { DEFAULT_BENCH_DATABASE_URL, startBenchPostgres, startPostgresServer, type PostgresServer, type PostgresSource } from './postgres-server';

export interface TestDatabase {
  url: string;
  name: string;
  /** A URL on the same server allowed to create databases (for fresh empty ones). */
  adminUrl: string;
  drop(): Promise<void>;
}

/**
 * A database of its own for one test file. `migrated: false` gives an empty
 * one (for migration tests); the default is a copy of the migrated template.
 */
export async function freshDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = process.env[TEST_ENV.adminUrl];
  const templateDatabase = process.env[TEST_ENV.templateDatabase];
  if (!adminUrl || !templateDatabase) {
    throw new Error("no test PostgreSQL: add globalSetup: [require.resolve('@mcp/db/testing/global-setup')] to vitest.config");
  }
  const template = options.migrated === false ? 'template0' : templateDatabase;
  const name = uniqueDatabaseName('mcp_test');
  const url = await createDatabase(adminUrl, name, template);
  return { url, name, adminUrl, drop: () => dropDatabase(adminUrl, name) };
}
