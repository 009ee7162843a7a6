import { Client } from 'pg';
import { createDataSource } from './data-source';

/** Arbitrary constant: every migrator takes this advisory lock first, so two never interleave. */
const MIGRATION_LOCK_KEY = 4_202_202_501;

export interface MigrationResult {
  applied: string[];
}

async function withMigrationLock<T>(url: string, work: () => Promise<T>): Promise<T> {
  const lockClient = new Client({ connectionString: url, application_name: 'mcp-migrate-lock' });
  await lockClient.connect();
  try {
    await lockClient.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    return await work();
  } finally {
    await lockClient.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await lockClient.end();
  }
}

/** Applies every pending migration. Safe to run concurrently and repeatedly. */
export async function migrateUp(url: string): Promise<MigrationResult> {
  return withMigrationLock(url, async () => {
    const ds = createDataSource({ url, applicationName: 'mcp-migrate', poolSize: 2 });
    await ds.initialize();
    try {
      const ran = await ds.runMigrations({ transaction: 'each' });
      return { applied: ran.map((m) => m.name) };
    } finally {
      await ds.destroy();
    }
  });
}

/** Reverts the most recently applied migration; returns its name, or undefined if none. */
export async function migrateDown(url: string): Promise<string | undefined> {
  return withMigrationLock(url, async () => {
    const ds = createDataSource({ url, applicationName: 'mcp-migrate', poolSize: 2 });
    await ds.initialize();
    try {
      const before = await appliedMigrations(ds.options.migrationsTableName!, url);
      if (before.length === 0) return undefined;
      await ds.undoLastMigration({ transaction: 'each' });
      return before[before.length - 1];
    } finally {
      await ds.destroy();
    }
  });
}

/** Names of applied migrations, oldest first. Empty when the schema was never migrated. */
export async function appliedMigrations(table: string, url: string): Promise<string[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const exists = await client.query('SELECT to_regclass($1) AS t', [table]);
    if (exists.rows[0].t === null) return [];
    const res = await client.query(`SELECT name FROM ${table} ORDER BY timestamp, id`);
    return res.rows.map((r) => r.name as string);
  } finally {
    await client.end();
  }
}
