import type { DataSource } from 'typeorm';
import { ResourceExhaustedError, UnauthenticatedError } from '../errors';

export interface RateLimit {
  requests: number;
  windowSeconds: number;
  blockOnExceed: boolean;
}

interface Override extends RateLimit {
  scope: 'GLOBAL' | 'USER' | 'ENDPOINT' | 'USER_ENDPOINT' | 'IP';
  userId: string | null;
  endpoint: string | null;
  /** host(ip_address) of an IP row naming one host. */
  address: string | null;
}

type PrincipalScope = Exclude<Override['scope'], 'IP'>;

/** Most specific first: a per-user-and-method row beats a per-user row beats a per-method row beats a global one. */
const SPECIFICITY: Record<PrincipalScope, number> = { USER_ENDPOINT: 0, USER: 1, ENDPOINT: 2, GLOBAL: 3 };
const OVERRIDES_TTL_MS = 10_000;
/** Address lockouts are re-read at least this often (and at once after an auth-table change). */
const LOCKOUTS_TTL_MS = 1_000;
/** Hits counted here reach PostgreSQL within this time, all buckets in one statement. */
export const FLUSH_INTERVAL_MS = 100;
/** A replica decides alone from shared counts at most this old; older ones are read again first. */
const SHARED_COUNT_TTL_MS = 1_000;
/**
 * A replica decides alone while its hits not yet in PostgreSQL, this one
 * included, stay within this share of the room it last saw there
 * (limit − estimate). Beyond that it adds them and reads the count back in
 * the same statement before deciding. See docs/security.md for the bound.
 */
export const LOCAL_SHARE_OF_ROOM = 0.1;
/** How often (in flushes) a replica deletes counter windows nobody will read again. */
const CLEANUP_EVERY_FLUSHES = 1_000;

/** One counter window of one bucket (principal and method, or address), as this replica knows it. */
interface WindowCount {
  bucket: string;
  windowStart: number;
  windowMs: number;
  /** This window's hits in PostgreSQL when last read (this replica's sent hits included). */
  shared: number;
  /** The previous window's hits when last read. */
  previous: number;
  readAt: number;
  /** Admitted here, not yet sent. */
  pending: number;
  /** Sent, not yet acknowledged. */
  sending: number;
}

/** Where one admitted call was counted, so that it can be given back. */
interface CountedHit {
  bucket: string;
  windowStart: number;
  windowMs: number;
}

interface CountRow {
  bucket: string;
  windowStart: number;
  current: number;
  previous: number;
}

/**
 * Sliding-window rate limits shared by every replica: the estimate is this
 * window's count plus the previous window's, weighted by how much of it still
 * overlaps the sliding window; the counts live in PostgreSQL
 * (`rate_limit_windows`, one row per bucket and window). Limits come from
 * `rate_limits` rows (per user, per method, or both) and default to the
 * config's requests_per_minute. A call also counts against its client
 * address when a `rate_limits` row of scope IP names that address (for every
 * method, or for one): one bucket per address, whoever the principal.
 *
 * Counting is batched: a call far from its limit is decided from the
 * last-read shared count plus this replica's own unsent hits, and the hits of
 * every bucket go to PostgreSQL in one statement every FLUSH_INTERVAL_MS. A
 * call near its limit (see LOCAL_SHARE_OF_ROOM) sends its hit with everything
 * pending and decides on the count that statement returns, as every call did
 * before batching. Address lockouts (`rate_limits` scope IP) are cached
 * likewise, re-read every LOCKOUTS_TTL_MS and on invalidate().
 */
export class RateLimiter {
  private overrides: Override[] = [];
  private overridesLoadedAt = 0;
  /** Locked addresses → local time the lock ends, and the database's own end time for the message. */
  private lockouts = new Map<string, { endsAt: number; until: Date }>();
  private lockoutsLoadedAt = 0;
  private lockoutsLoading: Promise<void> | undefined;
  private readonly windows = new Map<string, WindowCount>();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushes = 0;

  constructor(
    private readonly ds: DataSource,
    private readonly defaultLimit: RateLimit,
  ) {}

  /** The auth tables changed: re-read limits and lockouts before the next decision. */
  invalidate(): void {
    this.overridesLoadedAt = 0;
    this.lockoutsLoadedAt = 0;
  }

  async admit(userId: string, method: string, address: string | null): Promise<void> {
    await this.loadOverrides();
    await this.refuseLockedAddress(address);
    const principalHit = await this.take(`${userId}|${method}`, this.limitFor(userId, method), `for ${method}`);
    const addressLimit = address === null ? undefined : this.addressLimitFor(address, method);
    if (!addressLimit) return;
    try {
      await this.take(addressLimit.bucket, addressLimit, `for calls from ${address}`);
    } catch (err) {
      // Refused (or not counted) by its address: the call uses up none of its principal's quota either.
      this.giveBack(principalHit);
      throw err;
    }
  }

  /** Counts one call in `bucket`, or refuses it (RESOURCE_EXHAUSTED with a retry delay) without counting it. */
  private async take(bucket: string, limit: RateLimit, subject: string): Promise<CountedHit> {
    const windowMs = limit.windowSeconds * 1000;
    const now = Date.now();
    const windowStart = Math.floor(now / windowMs) * windowMs;
    const hit = { bucket, windowStart, windowMs };
    const w = this.window(bucket, windowStart, windowMs);
    const overlap = 1 - (now - windowStart) / windowMs;
    if (!limit.blockOnExceed || (now - w.readAt < SHARED_COUNT_TTL_MS && this.decidesAlone(w, overlap, limit.requests))) {
      w.pending += 1;
      this.scheduleFlush();
      return hit;
    }
    // Near the limit (or nothing read yet): add this hit with everything pending, and decide on the count read back.
    w.pending += 1;
    const counts = await this.flush(w).catch((err: unknown) => {
      // Not counted: the call fails.
      w.pending -= 1;
      throw err;
    });
    const row = counts.find((c) => c.bucket === bucket && c.windowStart === windowStart)!;
    const estimate = row.current + row.previous * overlap;
    if (estimate <= limit.requests) return hit;
    // A refused call does not use up quota.
    await this.ds.query(
      'UPDATE rate_limit_windows SET hits = hits - 1 WHERE bucket = $1 AND window_start = to_timestamp($2::float8 / 1000)',
      [bucket, windowStart],
    );
    w.shared -= 1;
    const retryAfterMs = Math.max(1, Math.ceil(this.resumeAt(row.current, row.previous, limit.requests, windowStart, windowMs) - now));
    throw new ResourceExhaustedError(`rate limit of ${limit.requests} requests per ${limit.windowSeconds}s exceeded ${subject}`, retryAfterMs);
  }

  /** Uncounts an admitted hit: a negative pending hit, sent with the next flush (the window is re-created if it was forgotten). */
  private giveBack(hit: CountedHit): void {
    this.window(hit.bucket, hit.windowStart, hit.windowMs).pending -= 1;
    this.scheduleFlush();
  }

  /**
   * Sends every bucket's unsent hits in one statement and refreshes the shared
   * counts of those buckets. On failure the hits stay pending for the next
   * flush (and the caller that needed the count gets the error).
   */
  async flush(mustInclude?: WindowCount): Promise<CountRow[]> {
    const batch = [...this.windows.values()].filter((w) => w.pending !== 0 || w === mustInclude);
    if (batch.length === 0) return [];
    const sent = batch.map((w) => w.pending);
    batch.forEach((w, i) => {
      w.sending += sent[i];
      w.pending = 0;
    });
    const readAt = Date.now();
    let rows: CountRow[];
    try {
      rows = await this.ds.query(
        `WITH input AS (
           SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[], $4::int[]) AS t(bucket, window_ms, previous_ms, hits)
         ), added AS (
           INSERT INTO rate_limit_windows (bucket, window_start, hits)
           SELECT bucket, to_timestamp(window_ms / 1000), hits FROM input
           ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limit_windows.hits + EXCLUDED.hits
           RETURNING bucket, window_start, hits)
         SELECT i.bucket, i.window_ms AS "windowStart", a.hits AS current, coalesce(p.hits, 0) AS previous
           FROM input i
           JOIN added a ON a.bucket = i.bucket AND a.window_start = to_timestamp(i.window_ms / 1000)
           LEFT JOIN rate_limit_windows p ON p.bucket = i.bucket AND p.window_start = to_timestamp(i.previous_ms / 1000)`,
        [batch.map((w) => w.bucket), batch.map((w) => w.windowStart), batch.map((w) => w.windowStart - w.windowMs), sent],
      );
      for (const row of rows) {
        const w = this.windows.get(windowKey(row.bucket, row.windowStart));
        if (!w) continue;
        w.shared = row.current;
        w.previous = row.previous;
        w.readAt = readAt;
      }
      batch.forEach((w, i) => (w.sending -= sent[i]));
      this.forgetPastWindows(readAt);
    } catch (err) {
      batch.forEach((w, i) => {
        w.sending -= sent[i];
        w.pending += sent[i];
      });
      this.scheduleFlush();
      throw err;
    }
    if (++this.flushes % CLEANUP_EVERY_FLUSHES === 0) {
      // Housekeeping only: the next cleanup catches up if this one fails.
      this.ds.query(`DELETE FROM rate_limit_windows WHERE window_start < now() - interval '1 day'`).catch(() => undefined);
    }
    return rows;
  }

  /**
   * Whether this replica may decide alone: its hits not yet in PostgreSQL
   * (this one included) fit within LOCAL_SHARE_OF_ROOM of the room left at the
   * last read. What other replicas admitted since that read is unknown here,
   * so each replica can overshoot the limit by at most that share of the room
   * (none with a single replica: its own hits are always known).
   */
  private decidesAlone(w: WindowCount, overlap: number, limit: number): boolean {
    const room = limit - (w.shared + w.previous * overlap);
    return w.sending + w.pending + 1 <= room * LOCAL_SHARE_OF_ROOM;
  }

  private window(bucket: string, windowStart: number, windowMs: number): WindowCount {
    const key = windowKey(bucket, windowStart);
    let w = this.windows.get(key);
    if (!w) {
      w = { bucket, windowStart, windowMs, shared: 0, previous: 0, readAt: Number.NEGATIVE_INFINITY, pending: 0, sending: 0 };
      this.windows.set(key, w);
    }
    return w;
  }

  /** Windows that ended, with nothing left to send, are never read again here. */
  private forgetPastWindows(now: number): void {
    for (const [key, w] of this.windows) {
      if (w.windowStart + w.windowMs < now && w.pending === 0 && w.sending === 0) this.windows.delete(key);
    }
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      // A failed flush keeps its hits pending and schedules the next one.
      this.flush().catch(() => undefined);
    }, FLUSH_INTERVAL_MS);
    // Pending hits never keep a process alive: losing them only forgives a few requests.
    this.flushTimer.unref();
  }

  private async refuseLockedAddress(address: string | null): Promise<void> {
    if (Date.now() - this.lockoutsLoadedAt > LOCKOUTS_TTL_MS) {
      this.lockoutsLoading ??= this.loadLockouts().finally(() => (this.lockoutsLoading = undefined));
      await this.lockoutsLoading;
    }
    const lockout = address === null ? undefined : this.lockouts.get(address);
    if (lockout && lockout.endsAt > Date.now()) {
      throw new UnauthenticatedError(`too many failed authentications from this address; locked until ${lockout.until.toISOString()}`);
    }
  }

  private async loadLockouts(): Promise<void> {
    const loadedAt = Date.now();
    const rows: Array<{ address: string; until: Date; remainingMs: number }> = await this.ds.query(
      `SELECT host(ip_address) AS address, blocked_until AS until,
              extract(epoch FROM blocked_until - now())::float8 * 1000 AS "remainingMs"
         FROM rate_limits
        WHERE scope = 'IP' AND endpoint IS NULL AND is_active AND blocked_until > now()`,
    );
    // Remaining time rather than the database's clock: the two clocks may differ.
    this.lockouts = new Map(rows.map((r) => [r.address, { endsAt: loadedAt + r.remainingMs, until: new Date(r.until) }]));
    this.lockoutsLoadedAt = loadedAt;
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

  private async loadOverrides(): Promise<void> {
    if (Date.now() - this.overridesLoadedAt <= OVERRIDES_TTL_MS) return;
    // An IP row limits one host: a network (masklen below the full width) matches no caller.
    this.overrides = await this.ds.query(
      `SELECT scope, user_id AS "userId", endpoint,
              CASE WHEN masklen(ip_address) = CASE family(ip_address) WHEN 4 THEN 32 ELSE 128 END THEN host(ip_address) END AS address,
              requests_limit AS requests, window_seconds AS "windowSeconds", block_on_exceed AS "blockOnExceed"
         FROM rate_limits WHERE is_active`,
    );
    this.overridesLoadedAt = Date.now();
  }

  private limitFor(userId: string, method: string): RateLimit {
    const matching = this.overrides
      .filter((o): o is Override & { scope: PrincipalScope } => o.scope !== 'IP')
      .filter((o) => (o.userId === null || o.userId === userId) && (o.endpoint === null || o.endpoint === method))
      .filter((o) => (o.scope.includes('USER') ? o.userId === userId : true) && (o.scope.includes('ENDPOINT') ? o.endpoint === method : true))
      .sort((a, b) => SPECIFICITY[a.scope] - SPECIFICITY[b.scope]);
    return matching[0] ?? this.defaultLimit;
  }

  /** The address's own limit, if a row names it: for this method beats for every method; each has its own bucket. */
  private addressLimitFor(address: string, method: string): (RateLimit & { bucket: string }) | undefined {
    const row =
      this.overrides.find((o) => o.scope === 'IP' && o.address === address && o.endpoint === method) ??
      this.overrides.find((o) => o.scope === 'IP' && o.address === address && o.endpoint === null);
    if (!row) return undefined;
    return { ...row, bucket: row.endpoint === null ? `ip:${address}` : `ip:${address}|${method}` };
  }
}

function windowKey(bucket: string, windowStart: number): string {
  return `${bucket}@${windowStart}`;
}
