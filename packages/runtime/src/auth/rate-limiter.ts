import type { DataSource } from 'typeorm';
import { ResourceExhaustedError, UnauthenticatedError } from '../errors';

export interface RateLimit {
  requests: number;
  windowSeconds: number;
  blockOnExceed: boolean;
}

interface Override extends RateLimit {
  scope: 'GLOBAL' | 'USER' | 'ENDPOINT' | 'USER_ENDPOINT';
  userId: string | null;
  endpoint: string | null;
}

/** Most specific first: a per-user-and-method row beats a per-user row beats a per-method row beats a global one. */
const SPECIFICITY = { USER_ENDPOINT: 0, USER: 1, ENDPOINT: 2, GLOBAL: 3 } as const;
const OVERRIDES_TTL_MS = 10_000;
/** How often (in calls) a replica deletes counter windows nobody will read again. */
const CLEANUP_EVERY = 1_000;

/**
 * Sliding-window rate limits shared by every replica: each call increments a
 * counter row (principal, method, window) in PostgreSQL, and the estimate is
 * this window's count plus the previous window's, weighted by how much of it
 * still overlaps the sliding window. The same statement tells whether the
 * caller's address is locked out. Limits come from `rate_limits` rows
 * (per user, per method, or both) and default to the config's requests_per_minute.
 */
export class RateLimiter {
  private overrides: Override[] = [];
  private overridesLoadedAt = 0;
  private calls = 0;

  constructor(
    private readonly ds: DataSource,
    private readonly defaultLimit: RateLimit,
  ) {}

  invalidate(): void {
    this.overridesLoadedAt = 0;
  }

  async admit(userId: string, method: string, address: string | null): Promise<void> {
    const limit = await this.limitFor(userId, method);
    const windowMs = limit.windowSeconds * 1000;
    const now = Date.now();
    const windowStart = Math.floor(now / windowMs) * windowMs;
    const bucket = `${userId}|${method}`;
    const [row] = await this.ds.query(
      `WITH hit AS (
         INSERT INTO rate_limit_windows (bucket, window_start, hits) VALUES ($1, to_timestamp($2::float8 / 1000), 1)
         ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limit_windows.hits + 1
         RETURNING hits)
       SELECT (SELECT hits FROM hit) AS current,
              coalesce((SELECT hits FROM rate_limit_windows WHERE bucket = $1 AND window_start = to_timestamp($3::float8 / 1000)), 0) AS previous,
              (SELECT blocked_until FROM rate_limits
                WHERE scope = 'IP' AND endpoint IS NULL AND is_active AND ip_address = $4::inet AND blocked_until > now()) AS "blockedUntil"`,
      [bucket, windowStart, windowStart - windowMs, address],
    );
    if (++this.calls % CLEANUP_EVERY === 0) {
      await this.ds.query(`DELETE FROM rate_limit_windows WHERE window_start < now() - interval '1 day'`);
    }
    if (row.blockedUntil) {
      throw new UnauthenticatedError(`too many failed authentications from this address; locked until ${new Date(row.blockedUntil).toISOString()}`);
    }
    const overlap = 1 - (now - windowStart) / windowMs;
    const estimate = row.current + row.previous * overlap;
    if (estimate <= limit.requests || !limit.blockOnExceed) return;
    // A refused call does not use up quota.
    await this.ds.query(
      'UPDATE rate_limit_windows SET hits = hits - 1 WHERE bucket = $1 AND window_start = to_timestamp($2::float8 / 1000)',
      [bucket, windowStart],
    );
    const retryAfterMs = Math.max(1, Math.ceil(this.resumeAt(row.current, row.previous, limit.requests, windowStart, windowMs) - now));
    throw new ResourceExhaustedError(
      `rate limit of ${limit.requests} requests per ${limit.windowSeconds}s exceeded for ${method}`,
      retryAfterMs,
    );
  }

  /**
   * Earliest time a retry fits: with `current` calls counted in this window
   * (the refused one included, standing for the retry), while the previous
   * window's weight decays; or, if this window alone is over the limit, in the
   * next one, where this window becomes the decaying previous one.
   */
  private resumeAt(current: number, previous: number, limit: number, windowStart: number, windowMs: number): number {
    if (current <= limit && previous > 0) return windowStart + (1 - (limit - current) / previous) * windowMs;
    const carried = current - 1;
    const fraction = carried > 0 ? Math.max(0, 1 - (limit - 1) / carried) : 0;
    return windowStart + windowMs + fraction * windowMs;
  }

  private async limitFor(userId: string, method: string): Promise<RateLimit> {
    if (Date.now() - this.overridesLoadedAt > OVERRIDES_TTL_MS) {
      this.overrides = await this.ds.query(
        `SELECT scope, user_id AS "userId", endpoint, requests_limit AS requests, window_seconds AS "windowSeconds",
                block_on_exceed AS "blockOnExceed"
           FROM rate_limits WHERE is_active AND scope IN ('GLOBAL', 'USER', 'ENDPOINT', 'USER_ENDPOINT')`,
      );
      this.overridesLoadedAt = Date.now();
    }
    const matching = this.overrides
      .filter((o) => (o.userId === null || o.userId === userId) && (o.endpoint === null || o.endpoint === method))
      .filter((o) => (o.scope.includes('USER') ? o.userId === userId : true) && (o.scope.includes('ENDPOINT') ? o.endpoint === method : true))
      .sort((a, b) => SPECIFICITY[a.scope] - SPECIFICITY[b.scope]);
    return matching[0] ?? this.defaultLimit;
  }
}
