import * as grpc from '@grpc/grpc-js';
import * as net from 'node:net';
import { createDataSource, MIGRATIONS_TABLE } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../src/auth/principal';
import { CommitOutcomeUnknownError, databaseReady, inTransaction, runStatement } from '../src/db';
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

describe('runStatement', () => {
  it('runs one statement with the call settings as its own transaction, and leaves the pooled connection clean', async () => {
    const [row] = await runStatement<{ user_id: string; role: string; timeout: string; id: number }>(
      ds,
      deadlineIn(10_000),
      `WITH ins AS (INSERT INTO scratch VALUES ($1, $2) RETURNING id)
       SELECT current_setting('app.current_user_id') AS user_id, current_user::text AS role,
              current_setting('statement_timeout') AS timeout, (SELECT id FROM ins) AS id`,
      [30, 'thirty'],
      { actingUserId: 'user-9' },
    );
    expect(row).toMatchObject({ user_id: 'user-9', id: 30 });
    const ms = row.timeout.endsWith('ms') ? Number(row.timeout.slice(0, -2)) : Number(row.timeout.slice(0, -1)) * 1000;
    expect(ms).toBeGreaterThan(9_000);
    expect(ms).toBeLessThanOrEqual(10_000);
    expect(await scratchIds()).toContain(30);
    // The settings were local to that transaction.
    const [after] = (await ds.query(
      "SELECT current_setting('app.current_user_id', true) AS user_id, current_setting('statement_timeout') AS timeout",
    )) as Array<{ user_id: string | null; timeout: string }>;
    expect({ user: after.user_id ?? '', timeout: after.timeout }).toEqual({ user: '', timeout: '0' });
  });

  it('reads as a non-admin principal under the application role, for that statement only', async () => {
    const principal: Principal = {
      userId: '00000000-0000-0000-0000-0000000000aa',
      apiKeyId: undefined,
      via: 'api_key',
      roles: ['viewer'],
      permissions: new Set(),
      isAdmin: false,
    };
    const [row] = await runStatement<{ role: string }>(ds, noDeadline, 'SELECT current_user::text AS role', [], { readAs: principal });
    expect(row.role).toBe('mcp_app');
    const [after] = (await ds.query('SELECT current_user::text AS role')) as Array<{ role: string }>;
    expect(after.role).not.toBe('mcp_app');
  });

  it('prepares each statement text once per pooled connection', async () => {
    const text = 'SELECT count(*)::int AS n FROM scratch WHERE id > $1';
    for (const min of [0, 1, 2]) {
      const [row] = await runStatement<{ n: number }>(ds, deadlineIn(10_000), text, [min]);
      expect(row.n).toBe((await scratchIds()).filter((id) => id > min).length);
    }
    // One connection in this pool: its session holds the prepared statements.
    const prepared = (await ds.query('SELECT name, statement FROM pg_prepared_statements WHERE statement = $1', [text])) as Array<{
      name: string;
    }>;
    expect(prepared).toHaveLength(1);
    expect(prepared[0].name).toMatch(/^mcp_[0-9a-f]{24}$/);
  });

  it('caps the statement at the remaining deadline', async () => {
    const startedAt = Date.now();
    const err = await runStatement(ds, deadlineIn(300), 'SELECT pg_sleep(5)', []).catch((e: unknown) => e);
    expect(toServiceError(err).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(Date.now() - startedAt).toBeLessThan(2_000);
  });

  it('commits nothing when the statement fails, and maps the error', async () => {
    const err = await runStatement(ds, deadlineIn(10_000), "INSERT INTO scratch VALUES (31, 'x'), (1, 'duplicate')", []).catch(
      (e: unknown) => e,
    );
    expect(toServiceError(err).code).toBe(grpc.status.ALREADY_EXISTS);
    expect(await scratchIds()).not.toContain(31);
  });
});

/**
 * Between the pool and PostgreSQL: forwards everything until armed; once
 * the client sends the armed message, that message still reaches the server,
 * and when the server's ReadyForQuery comes back (it has committed) both
 * sockets are cut instead of delivering it.
 */
class CommitCutter {
  private readonly server: net.Server;
  private trigger: ((type: string, body: Buffer) => boolean) | undefined;
  cuts = 0;

  private constructor(target: { host: string; port: number }) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      let fromClient = Buffer.alloc(0);
      let startupSeen = false;
      let cutArmed = false;
      let fromServer = Buffer.alloc(0);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
      client.on('data', (chunk: Buffer) => {
        fromClient = Buffer.concat([fromClient, chunk]);
        // The startup message has no type byte; every later one is type + int32 length (which counts itself).
        for (;;) {
          const headed = startupSeen ? 1 : 0;
          if (fromClient.length < headed + 4) break;
          const length = fromClient.readInt32BE(headed);
          if (fromClient.length < headed + length) break;
          if (startupSeen && this.trigger?.(String.fromCharCode(fromClient[0]), fromClient.subarray(5, 1 + length))) {
            this.trigger = undefined;
            cutArmed = true;
          }
          startupSeen = true;
          fromClient = fromClient.subarray(headed + length);
        }
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (!cutArmed) return void client.write(chunk);
        fromServer = Buffer.concat([fromServer, chunk]);
        for (let at = 0; at + 5 <= fromServer.length; at += 1 + fromServer.readInt32BE(at + 1)) {
          if (fromServer[at] === 0x5a /* 'Z' ReadyForQuery */) {
            this.cuts += 1;
            return close();
          }
        }
      });
    });
  }

  static async start(target: { host: string; port: number }): Promise<CommitCutter> {
    const cutter = new CommitCutter(target);
    await new Promise<void>((resolve) => cutter.server.listen(0, '127.0.0.1', resolve));
    return cutter;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Cut the connection after the next client message matching `trigger` has been answered. */
  arm(trigger: (type: string, body: Buffer) => boolean): void {
    this.trigger = trigger;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('a connection lost while committing', () => {
  let cutter: CommitCutter;
  let viaCutter: DataSource;

  beforeAll(async () => {
    const url = new URL(db.url);
    cutter = await CommitCutter.start({ host: url.hostname, port: Number(url.port) });
    url.port = String(cutter.port);
    viaCutter = createDataSource({ url: url.toString(), poolSize: 1, applicationName: 'runtime-test-cut' });
    await viaCutter.initialize();
  });
  afterAll(async () => {
    await viaCutter?.destroy();
    await cutter?.close();
  });

  it('is UNKNOWN, not UNAVAILABLE, for inTransaction: the COMMIT may have taken effect (here it did)', async () => {
    cutter.arm((type, body) => type === 'Q' && body.toString('utf8').startsWith('COMMIT'));
    const err = await inTransaction(viaCutter, deadlineIn(10_000), (q) => q.query("INSERT INTO scratch VALUES (40, 'forty')")).catch(
      (e: unknown) => e,
    );
    expect(cutter.cuts).toBe(1);
    expect(err).toBeInstanceOf(CommitOutcomeUnknownError);
    expect(toServiceError(err).code).toBe(grpc.status.UNKNOWN);
    expect(await scratchIds()).toContain(40);
    // The pool replaced the broken connection.
    expect(await viaCutter.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  it('is UNKNOWN for runStatement, whose commit travels with the statement', async () => {
    cutter.arm((type) => type === 'S');
    const err = await runStatement(viaCutter, deadlineIn(10_000), 'INSERT INTO scratch VALUES ($1, $2)', [41, 'forty-one']).catch(
      (e: unknown) => e,
    );
    expect(cutter.cuts).toBe(2);
    expect(toServiceError(err).code).toBe(grpc.status.UNKNOWN);
    expect(await scratchIds()).toContain(41);
  });

  it('is still UNAVAILABLE when the connection fails before the commit (nothing can have committed)', async () => {
    cutter.arm((type, body) => type === 'Q' && body.toString('utf8').startsWith('START TRANSACTION'));
    const err = await inTransaction(viaCutter, deadlineIn(10_000), (q) => q.query("INSERT INTO scratch VALUES (42, 'forty-two')")).catch(
      (e: unknown) => e,
    );
    expect(toServiceError(err).code).toBe(grpc.status.UNAVAILABLE);
    expect(await scratchIds()).not.toContain(42);
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
