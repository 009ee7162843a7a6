import { migrateUp } from '../migrate';
import { createDatabase, dropDatabase, uniqueDatabaseName } from './databases';
import { startPostgresServer } from './postgres-server';

/** Environment variables through which test workers find the server and template. */
export const TEST_ENV = {
  adminUrl: 'MCP_TEST_PG_ADMIN_URL',
  templateDatabase: 'MCP_TEST_TEMPLATE_DB',
  source: 'MCP_TEST_PG_SOURCE',
} as const;

/**
 * vitest globalSetup: one PostgreSQL server per test run, and one migrated
 * template database that every test file copies (CREATE DATABASE … TEMPLATE),
 * so each file gets a fresh, fully migrated database in milliseconds.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const server = await startPostgresServer();
  const template = uniqueDatabaseName('mcp_template');
  const templateUrl = await createDatabase(server.adminUrl, template);
  await migrateUp(templateUrl);
  // Workers are started after this and inherit the environment.
  process.env[TEST_ENV.adminUrl] = server.adminUrl;
  process.env[TEST_ENV.templateDatabase] = template;
  process.env[TEST_ENV.source] = server.source;
  return async () => {
    await dropDatabase(server.adminUrl, template);
    await server.stop();
  };
}
