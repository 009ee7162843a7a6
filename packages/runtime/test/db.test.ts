import * as grpc from '@grpc/grpc-js';
import { createDataSource, MIGRATIONS_TABLE } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseReady, inTransaction } from '../src/db';
import { DeadlineExceededError, toServiceError } from '../src/errors';

const noDeadline = { remainingMs: () => undefined, signal: new AbortController().signal };
const deadlineIn = (ms: number) => {
  const at = Date.now() + ms;
  return { remainingMs: () => Math.max(0, at - Date.now()), signal: new AbortController().signal };
};

let db: TestDatabase;
let ds: DataSource;

beforeAll(async () => {
  db = await freshDatabase();
  // One connection: a transaction that failed to release it would hang the next test.
  ds = createDataSource({ url: db.url, poolSize: 1, applicationName: 'runtime-test' });
  await ds.initialize();
  await ds.query('CREATE TABLE scratch (id int PRIMARY KEY, note text NOT NULL CHECK (note <> \'\'))');
});

afterAll(async () => {
  await ds?.destroy();
  await db?.drop();
});

async function scratchIds(): Promise<number[]> {
  const rows = (await ds.query('SELECT id FROM scratch ORDER BY id')) as Array<{ id: number }>;
  return rows.map((r) => r.id);
}

describe('inTransaction', () => {
  it('commits what the work did', async () => {
    const result = await inTransaction(ds, noDeadline, async (q) => {
      await q.query("INSERT INTO scratch VALUES (1, 'one'), (2, 'two')");
      return 'done';
    });
    expect(result).toBe('done');
    expect(await scratchIds()).toEqual([1, 2]);
  });

  it('rolls back everything when the work throws, and rethrows', async () => {
    const failure = new Error('domain rule broken');
    await expect(
      inTransaction(ds, undefined, async (q) => {
        await q.query("INSERT INTO scratch VALUES (10, 'ten')");
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(await scratchIds()).toEqual([1, 2]);
  });

  it('rolls back on a database error, which maps to its status', async () => {
    const err = await inTransaction(ds, undefined, async (q) => {
      await q.query("INSERT INTO scratch VALUES (11, 'eleven')");
      await q.query("INSERT INTO scratch VALUES (1, 'duplicate')");
    }).catch((e: unknown) => e);
    expect(toServiceError(err).code).toBe(grpc.status.ALREADY_EXISTS);
    expect(await scratchIds()).toEqual([1, 2]);
    const check = await inTransaction(ds, undefined, (q) => q.query("INSERT INTO scratch VALUES (12, '')")).catch((e: unknown) => e);
    expect(toServiceError(check).code).toBe(grpc.status.INVALID_ARGUMENT);
    const cast = await inTransaction(ds, undefined, (q) => q.query("SELECT 'not-a-uuid'::uuid")).catch((e: unknown) => e);
    expect(toServiceError(cast).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('caps statements at the remaining deadline: the database stops and the call gets DEADLINE_EXCEEDED', async () => {
    const startedAt = Date.now();
    const err = await inTransaction(ds, deadlineIn(300), (q) => q.query('SELECT pg_sleep(5)')).catch((e: unknown) => e);
    const elapsed = Date.now() - startedAt;
    expect(toServiceError(err).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(elapsed).toBeLessThan(2_000);
    // The limit was transaction-local: the pooled connection is back to no limit.
    const [{ statement_timeout }] = (await ds.query('SHOW statement_timeout')) as Array<{ statement_timeout: string }>;
    expect(statement_timeout).toBe('0');
  });

  it('sets the statement timeout from the time left', async () => {
    const timeout = await inTransaction(ds, deadlineIn(10_000), async (q) => {
      const [{ statement_timeout }] = (await q.query('SHOW statement_timeout')) as Array<{ statement_timeout: string }>;
      return statement_timeout;
    });
    const ms = timeout.endsWith('ms') ? Number(timeout.slice(0, -2)) : Number(timeout.slice(0, -1)) * 1000;
    expect(ms).toBeGreaterThan(9_000);
    expect(ms).toBeLessThanOrEqual(10_000);
  });

  it('exposes the acting user to SQL for this transaction only, and applies the isolation level', async () => {
    const seen = await inTransaction(
      ds,
      noDeadline,
      async (q) => {
        const [row] = (await q.query(
          "SELECT current_setting('app.current_user_id') AS user_id, current_setting('transaction_isolation') AS isolation",
        )) as Array<{ user_id: string; isolation: string }>;
        return row;
      },
      { actingUserId: 'user-7', isolation: 'SERIALIZABLE' },
    );
    expect(seen).toEqual({ user_id: 'user-7', isolation: 'serializable' });
    const [after] = (await ds.query("SELECT current_setting('app.current_user_id', true) AS user_id")) as Array<{
      user_id: string | null;
    }>;
    expect(after.user_id ?? '').toBe('');
  });

  it('does not touch the database once the call was cancelled or expired', async () => {
    const controller = new AbortController();
    controller.abort(new DeadlineExceededError('deadline exceeded'));
    let ran = false;
    const err = await inTransaction(ds, { remainingMs: () => 0, signal: controller.signal }, async () => {
      ran = true;
    }).catch((e: unknown) => e);
    expect(ran).toBe(false);
    expect(toServiceError(err).code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });
});

describe('databaseReady', () => {
  it('is true for a reachable, fully migrated database', async () => {
    expect(ds.migrations.length).toBeGreaterThan(0);
    expect(await databaseReady(ds)).toBe(true);
  });

  it('is false when a migration is missing', async () => {
    const [last] = (await ds.query(`SELECT id, timestamp, name FROM ${MIGRATIONS_TABLE} ORDER BY id DESC LIMIT 1`)) as Array<{
      id: number;
      timestamp: string;
      name: string;
    }>;
    await ds.query(`DELETE FROM ${MIGRATIONS_TABLE} WHERE id = $1`, [last.id]);
    try {
      expect(await databaseReady(ds)).toBe(false);
    } finally {
      await ds.query(`INSERT INTO ${MIGRATIONS_TABLE} (id, timestamp, name) VALUES ($1, $2, $3)`, [
        last.id,
        last.timestamp,
        last.name,
      ]);
    }
    expect(await databaseReady(ds)).toBe(true);
  });

  it('is false for a reachable database that was never migrated', async () => {
    const empty = await freshDatabase({ migrated: false });
    const emptyDs = createDataSource({ url: empty.url, poolSize: 1 });
    await emptyDs.initialize();
    try {
      expect(await databaseReady(emptyDs)).toBe(false);
    } finally {
      await emptyDs.destroy();
      await empty.drop();
    }
  });

  it('is false when the database is unreachable', async () => {
    const gone = await freshDatabase();
    const goneDs = createDataSource({ url: gone.url, poolSize: 1 });
    await goneDs.initialize();
    expect(await databaseReady(goneDs)).toBe(true);
    await gone.drop(); // WITH (FORCE): terminates the pooled connection
    expect(await databaseReady(goneDs)).toBe(false);
    await goneDs.destroy();
    // and a connection that cannot be made maps to UNAVAILABLE
    const refused = createDataSource({ url: 'postgres://postgres@127.0.0.1:1/none', poolSize: 1 });
    const err = await refused.initialize().catch((e: unknown) => e);
    expect(toServiceError(err).code).toBe(grpc.status.UNAVAILABLE);
  });
});
