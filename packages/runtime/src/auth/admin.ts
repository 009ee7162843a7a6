import type { ClientBase, Pool } from 'pg';
import { generateApiKey } from './api-keys';

type Db = Pick<ClientBase | Pool, 'query'>;

export interface IssuedKey {
  id: string;
  /** The key itself: shown once, never stored. */
  token: string;
  prefix: string;
  expiresAt: Date | null;
}

/** Creates a user, or returns the existing one with that username. */
export async function ensureUser(db: Db, user: { username: string; email: string; fullName?: string }): Promise<string> {
  const { rows } = await db.query(
    `INSERT INTO users (username, email, full_name) VALUES ($1, $2, $3)
     ON CONFLICT (lower(username)) WHERE deleted_at IS NULL DO UPDATE SET email = users.email
     RETURNING id`,
    [user.username, user.email, user.fullName ?? null],
  );
  return rows[0].id;
}

export async function grantRole(db: Db, userId: string, role: string, grantedBy?: string): Promise<void> {
  await db.query(
    `INSERT INTO user_roles (user_id, role, granted_by) VALUES ($1, $2, $3) ON CONFLICT (user_id, role) DO NOTHING`,
    [userId, role, grantedBy ?? null],
  );
}

export async function revokeRole(db: Db, userId: string, role: string): Promise<void> {
  await db.query('DELETE FROM user_roles WHERE user_id = $1 AND role = $2', [userId, role]);
}

export async function issueApiKey(
  db: Db,
  request: { userId: string; name: string; expiresAt?: Date; createdBy?: string },
): Promise<IssuedKey> {
  const key = generateApiKey();
  const { rows } = await db.query(
    `INSERT INTO api_keys (user_id, name, key_prefix, key_hash, expires_at, created_by)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, expires_at`,
    [request.userId, request.name, key.prefix, key.hash, request.expiresAt ?? null, request.createdBy ?? null],
  );
  return { id: rows[0].id, token: key.token, prefix: key.prefix, expiresAt: rows[0].expires_at };
}

/** Revokes by key id or prefix; takes effect on every replica at once (NOTIFY). Returns whether a key was revoked. */
export async function revokeApiKey(db: Db, key: { id?: string; prefix?: string }, revokedBy?: string, reason?: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE api_keys SET revoked_at = now(), revoked_by = $3, revoked_reason = $4
      WHERE (id = $1 OR key_prefix = $2) AND revoked_at IS NULL`,
    [key.id ?? null, key.prefix ?? null, revokedBy ?? null, reason ?? null],
  );
  return (rowCount ?? 0) > 0;
}

/** A user with the given roles and a fresh key: what tests, `npm start` and bootstrap scripts need. */
export async function provisionPrincipal(
  db: Db,
  request: { username: string; roles: string[]; keyName?: string; expiresAt?: Date },
): Promise<{ userId: string } & IssuedKey> {
  const userId = await ensureUser(db, { username: request.username, email: `${request.username}@mcp.local` });
  for (const role of request.roles) await grantRole(db, userId, role);
  const key = await issueApiKey(db, { userId, name: request.keyName ?? `${request.username} key`, expiresAt: request.expiresAt });
  return { userId, ...key };
}

/**
 * The audit row of an identity change made outside any RPC (the admin
 * command): written in the caller's transaction, attributed to the platform's
 * system account, naming the operator in the description.
 */
export async function recordAdminAction(
  db: Db,
  action: { action: string; resourceType: string; resourceId: string; description: string },
): Promise<void> {
  await db.query(
    `INSERT INTO audit_logs (user_id, action_type, resource_type, resource_id, description, success)
     VALUES ('00000000-0000-0000-0000-000000000001', $1, $2, $3, $4, true)`,
    [action.action, action.resourceType, action.resourceId, action.description],
  );
}

/** users.id of `idOrName` (an id, or a username), or undefined. */
export async function findUser(db: Db, idOrName: string): Promise<string | undefined> {
  const { rows } = await db.query(
    `SELECT id FROM users WHERE deleted_at IS NULL AND (id::text = $1 OR lower(username) = lower($1))`,
    [idOrName],
  );
  return rows[0]?.id;
}
