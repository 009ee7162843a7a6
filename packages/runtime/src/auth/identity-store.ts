import type { DataSource } from 'typeorm';

export interface KeyRecord {
  keyId: string;
  userId: string;
  keyHash: string;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lockedUntil: Date | null;
  userUsable: boolean;
  userLockedUntil: Date | null;
}

export interface UserRecord {
  userId: string;
  userUsable: boolean;
  userLockedUntil: Date | null;
}

export interface Grants {
  roles: string[];
  permissions: string[];
}

export interface FailureCounts {
  fromAddress: number;
  withKey: number;
}

/** The SQL behind authentication: keys, users, role inheritance, failures and lockouts. */
export class IdentityStore {
  constructor(private readonly ds: DataSource) {}

  async keyByPrefix(prefix: string): Promise<KeyRecord | undefined> {
    const [row] = await this.ds.query(
      `SELECT k.id AS "keyId", k.user_id AS "userId", k.key_hash AS "keyHash", k.expires_at AS "expiresAt",
              k.revoked_at AS "revokedAt", k.locked_until AS "lockedUntil",
              (u.is_active AND u.deleted_at IS NULL) AS "userUsable", u.locked_until AS "userLockedUntil"
         FROM api_keys k JOIN users u ON u.id = k.user_id
        WHERE k.key_prefix = $1`,
      [prefix],
    );
    return row;
  }

  async userByName(username: string): Promise<UserRecord | undefined> {
    const [row] = await this.ds.query(
      `SELECT id AS "userId", (is_active AND deleted_at IS NULL) AS "userUsable", locked_until AS "userLockedUntil"
         FROM users WHERE lower(username) = lower($1) AND deleted_at IS NULL`,
      [username],
    );
    return row;
  }

  /** Roles granted and not expired, plus every role they inherit from (parent_role, transitively). */
  async grants(userId: string): Promise<Grants> {
    const [row] = await this.ds.query(
      `WITH RECURSIVE effective AS (
         SELECT r.name, r.parent_role, r.permissions
           FROM user_roles ur JOIN roles r ON r.name = ur.role
          WHERE ur.user_id = $1 AND (ur.expires_at IS NULL OR ur.expires_at > now())
         UNION
         SELECT p.name, p.parent_role, p.permissions FROM roles p JOIN effective e ON p.name = e.parent_role
       )
       SELECT coalesce(array_agg(DISTINCT e.name), '{}') AS roles,
              coalesce(array_agg(DISTINCT perm) FILTER (WHERE perm IS NOT NULL), '{}') AS permissions
         FROM effective e LEFT JOIN LATERAL jsonb_array_elements_text(e.permissions) perm ON true`,
      [userId],
    );
    return { roles: row.roles, permissions: row.permissions };
  }

  async touchKey(keyId: string): Promise<void> {
    await this.ds.query('UPDATE api_keys SET last_used_at = now() WHERE id = $1', [keyId]);
  }

  /** Writes the failure to security_events and counts recent ones from the same address and with the same key. */
  async recordAuthFailure(failure: {
    address: string | null;
    keyPrefix: string | undefined;
    reason: string;
    method: string;
    service: string;
    windowSeconds: number;
  }): Promise<FailureCounts> {
    const indicators = { reason: failure.reason, method: failure.method, ...(failure.keyPrefix && { key_prefix: failure.keyPrefix }) };
    await this.ds.query(
      `INSERT INTO security_events (event_type, severity, source_service, ip_address, description, indicators)
       VALUES ('failed_login', 'MEDIUM', $1, $2, $3, $4)`,
      [failure.service, failure.address, `authentication failed: ${failure.reason}`, JSON.stringify(indicators)],
    );
    const [row] = await this.ds.query(
      `SELECT count(*) FILTER (WHERE $1::inet IS NOT NULL AND ip_address = $1::inet)::int AS "fromAddress",
              count(*) FILTER (WHERE $2::text IS NOT NULL AND indicators->>'key_prefix' = $2)::int AS "withKey"
         FROM security_events
        WHERE event_type = 'failed_login' AND occurred_at >= now() - make_interval(secs => $3)`,
      [failure.address, failure.keyPrefix ?? null, failure.windowSeconds],
    );
    return row;
  }

  /**
   * An address has one IP row: its request limit, if an operator set one, and
   * its lockout. A row made here only locks: block_on_exceed false, so its
   * requests_limit (the failure threshold that tripped) never refuses a call.
   */
  async lockAddress(address: string, lockoutSeconds: number, threshold: number, windowSeconds: number, service: string): Promise<void> {
    await this.ds.query(
      `INSERT INTO rate_limits (scope, ip_address, requests_limit, window_seconds, block_on_exceed, block_duration_seconds, blocked_until)
       VALUES ('IP', $1, $2, $3, false, $4::int, now() + make_interval(secs => $4::int))
       ON CONFLICT (ip_address) WHERE scope = 'IP' AND endpoint IS NULL
       DO UPDATE SET blocked_until = EXCLUDED.blocked_until, is_active = true`,
      [address, threshold, windowSeconds, lockoutSeconds],
    );
    await this.recordLockout(service, address, null, `address ${address} locked for ${lockoutSeconds}s after ${threshold} failed authentications`);
  }

  async lockKey(prefix: string, lockoutSeconds: number, threshold: number, service: string): Promise<void> {
    // As a SELECT over the UPDATE: TypeORM returns [rows, count] for a bare UPDATE.
    const [key] = await this.ds.query(
      `WITH locked AS (UPDATE api_keys SET locked_until = now() + make_interval(secs => $2) WHERE key_prefix = $1 RETURNING user_id)
       SELECT user_id FROM locked`,
      [prefix, lockoutSeconds],
    );
    if (key) {
      await this.recordLockout(service, null, key.user_id, `API key ${prefix} locked for ${lockoutSeconds}s after ${threshold} failed authentications`);
    }
  }

  async recordPermissionDenied(event: { userId: string; address: string | null; method: string; permission: string; service: string }): Promise<void> {
    await this.ds.query(
      `INSERT INTO security_events (event_type, severity, source_service, user_id, ip_address, description, indicators)
       VALUES ('permission_denied', 'LOW', $1, $2, $3, $4, $5)`,
      [
        event.service,
        event.userId,
        event.address,
        `${event.method} requires ${event.permission}`,
        JSON.stringify({ method: event.method, permission: event.permission }),
      ],
    );
  }

  private async recordLockout(service: string, address: string | null, userId: string | null, description: string): Promise<void> {
    await this.ds.query(
      `INSERT INTO security_events (event_type, severity, source_service, ip_address, user_id, description)
       VALUES ('account_lockout', 'HIGH', $1, $2, $3, $4)`,
      [service, address, userId, description],
    );
  }
}
