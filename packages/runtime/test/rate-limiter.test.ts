import { randomUUID } from 'node:crypto';
import { createDataSource } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { IdentityStore } from '../src/auth/identity-store';
import { LOCAL_SHARE_OF_ROOM, RateLimiter, type RateLimit } from '../src/auth/rate-limiter';
import { ResourceExhaustedError, UnauthenticatedError } from '../src/errors';

let db: TestDatabase;
let ds: DataSource;
/** A second pool on the same database: another replica. */
let otherDs: DataSource;

beforeAll(async () => {
  db = await freshDatabase();
  ds = createDataSource({ url: db.url, poolSize: 4, applicationName: 'rate-limiter-test' });
  otherDs = createDataSource({ url: db.url, poolSize: 4, applicationName: 'rate-limiter-test-2' });
  await Promise.all([ds.initialize(), otherDs.initialize()]);
});

afterAll(async () => {
  await ds?.destroy();
  await otherDs?.destroy();
  await db?.drop();
});

const METHOD = '/test.Service/Call';
/** Hour-long windows: a test does not straddle a window boundary in practice. */
const limitOf = (requests: number): RateLimit => ({ requests, windowSeconds: 3600, blockOnExceed: true });

async function storedHits(userId: string): Promise<number> {
  const [row] = (await ds.query('SELECT coalesce(sum(hits), 0)::int AS n FROM rate_limit_windows WHERE bucket = $1', [
    `${userId}|${METHOD}`,
  ])) as Array<{ n: number }>;
  return row.n;
}

/** Loops until `admit` succeeds, returning how long that took. */
async function admittedWithin(admit: () => Promise<void>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const ok = await admit().then(
      () => true,
      () => false,
    );
    if (ok) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`still refused after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const outcome = (p: Promise<void>): Promise<string> =>
  p.then(
    () => 'OK',
    (err: unknown) => (err instanceof ResourceExhaustedError ? 'REFUSED' : `unexpected: ${String(err)}`),
  );

describe('RateLimiter', () => {
  it('shares a small window exactly between two replicas, and says when to retry', async () => {
    const userId = randomUUID();
    const first = new RateLimiter(ds, limitOf(4));
    const second = new RateLimiter(otherDs, limitOf(4));
    const outcomes: string[] = [];
    for (let i = 0; i < 3; i++) {
      outcomes.push(await outcome(first.admit(userId, METHOD, null)), await outcome(second.admit(userId, METHOD, null)));
    }
    expect(outcomes).toEqual(['OK', 'OK', 'OK', 'OK', 'REFUSED', 'REFUSED']);
    const refused = await first.admit(userId, METHOD, null).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ResourceExhaustedError);
    expect((refused as ResourceExhaustedError).retryAfterMs).toBeGreaterThan(0);
    // Refused calls use up no quota.
    expect(await storedHits(userId)).toBe(4);
  });

  it('decides calls far from the limit without a statement each, and every admitted hit reaches PostgreSQL', async () => {
    const userId = randomUUID();
    const limiter = new RateLimiter(ds, limitOf(1_000_000));
    const statements = vi.spyOn(ds, 'query');
    try {
      for (let i = 0; i < 500; i++) await limiter.admit(userId, METHOD, null);
      // Limits, lockouts and the first count are read once; then at most one flush per FLUSH_INTERVAL_MS.
      expect(statements.mock.calls.length).toBeLessThan(50);
    } finally {
      statements.mockRestore();
    }
    await limiter.flush();
    expect(await storedHits(userId)).toBe(500);
  });

  it('overshoots across replicas by at most the documented share of the room', async () => {
    const userId = randomUUID();
    const limit = 200;
    const replicas = [new RateLimiter(ds, limitOf(limit)), new RateLimiter(otherDs, limitOf(limit))];
    const results: string[] = [];
    // Both replicas admit concurrently, in waves, until well past the limit.
    for (let wave = 0; wave < 30; wave++) {
      results.push(...(await Promise.all(replicas.flatMap((r) => Array.from({ length: 10 }, () => outcome(r.admit(userId, METHOD, null)))))));
    }
    expect(results.filter((r) => r.startsWith('unexpected'))).toEqual([]);
    const admitted = results.filter((r) => r === 'OK').length;
    expect(admitted).toBeGreaterThanOrEqual(limit);
    expect(admitted).toBeLessThanOrEqual(limit + replicas.length * LOCAL_SHARE_OF_ROOM * limit);
    await Promise.all(replicas.map((r) => r.flush()));
    expect(await storedHits(userId)).toBe(admitted);
  });

  it('refuses a locked address, applies a new lockout once invalidated, and lets it go when it ends', async () => {
    const limiter = new RateLimiter(ds, limitOf(1_000));
    const userId = randomUUID();
    const store = new IdentityStore(ds);
    const lock = (address: string, seconds: number) => store.lockAddress(address, seconds, 5, 3600, 'rate-limiter-test');
    await lock('192.0.2.7', 60);
    await expect(limiter.admit(userId, METHOD, '192.0.2.7')).rejects.toBeInstanceOf(UnauthenticatedError);
    await limiter.admit(userId, METHOD, '192.0.2.8');
    await lock('192.0.2.8', 1);
    limiter.invalidate();
    const err = await limiter.admit(userId, METHOD, '192.0.2.8').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect((err as Error).message).toContain('locked until');
    const deadline = Date.now() + 10_000;
    let admitted = false;
    while (!admitted && Date.now() < deadline) {
      admitted = await limiter.admit(userId, METHOD, '192.0.2.8').then(
        () => true,
        () => new Promise<boolean>((r) => setTimeout(() => r(false), 100)),
      );
    }
    expect(admitted).toBe(true);
    // The row the lockout left limits no requests: more calls than its failure threshold (5) go through.
    for (let i = 0; i < 10; i++) await limiter.admit(userId, METHOD, '192.0.2.8');
    await expect(limiter.admit(userId, METHOD, '192.0.2.7')).rejects.toBeInstanceOf(UnauthenticatedError);
  });

  it('limits one address across principals and replicas, says when to retry, and recovers', async () => {
    const address = '198.51.100.20';
    await ds.query(`INSERT INTO rate_limits (scope, ip_address, requests_limit, window_seconds) VALUES ('IP', $1, 3, 1)`, [address]);
    const first = new RateLimiter(ds, limitOf(1_000));
    const second = new RateLimiter(otherDs, limitOf(1_000));
    const [alice, bob] = [randomUUID(), randomUUID()];
    const outcomes: string[] = [];
    for (let i = 0; i < 3; i++) {
      outcomes.push(await outcome(first.admit(alice, METHOD, address)), await outcome(second.admit(bob, METHOD, address)));
    }
    // Three calls from the address in all, whichever principal made them on whichever replica.
    expect(outcomes).toEqual(['OK', 'OK', 'OK', 'REFUSED', 'REFUSED', 'REFUSED']);
    const refused = await second.admit(bob, '/test.Service/Other', address).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ResourceExhaustedError);
    expect((refused as Error).message).toContain(`for calls from ${address}`);
    const retryAfterMs = (refused as ResourceExhaustedError).retryAfterMs;
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(2_000);
    // Another address, and the same principals elsewhere, are not limited by it.
    await first.admit(alice, METHOD, '198.51.100.21');
    await second.admit(bob, METHOD, null);
    // Calls refused for their address use up none of their principal's quota.
    await Promise.all([first.flush(), second.flush()]);
    expect((await storedHits(alice)) + (await storedHits(bob))).toBe(3 + 2);
    await new Promise((r) => setTimeout(r, retryAfterMs));
    expect(await admittedWithin(() => first.admit(alice, METHOD, address), 2_000)).toBeLessThan(2_000);
  });

  it('an address limit on one method counts only that method; a row naming a network limits no one', async () => {
    const address = '198.51.100.30';
    await ds.query(`INSERT INTO rate_limits (scope, ip_address, endpoint, requests_limit, window_seconds) VALUES ('IP', $1, $2, 2, 3600)`, [
      address,
      METHOD,
    ]);
    await ds.query(`INSERT INTO rate_limits (scope, ip_address, requests_limit, window_seconds) VALUES ('IP', '203.0.113.0/24', 1, 3600)`);
    const limiter = new RateLimiter(ds, limitOf(1_000));
    const outcomes = [];
    for (let i = 0; i < 3; i++) outcomes.push(await outcome(limiter.admit(randomUUID(), METHOD, address)));
    expect(outcomes).toEqual(['OK', 'OK', 'REFUSED']);
    for (let i = 0; i < 5; i++) await limiter.admit(randomUUID(), '/test.Service/Other', address);
    for (const host of ['203.0.113.0', '203.0.113.0', '203.0.113.9']) await limiter.admit(randomUUID(), METHOD, host);
  });
});
