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

export interface CustomRole {
  name: string;
  /** Permissions of its own (see PERMISSIONS); it also has every permission of its parent, transitively. */
  permissions: string[];
  parent?: string;
  description?: string;
}

/** Defines a custom (non-system) role. Returns false when a role of that name exists already (it is left as it is). */
export async function createRole(db: Db, role: CustomRole): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO roles (name, description, permissions, is_system_role, parent_role) VALUES ($1, $2, $3::jsonb, false, $4)
     ON CONFLICT (name) DO NOTHING`,
    [role.name, role.description ?? null, JSON.stringify(role.permissions), role.parent ?? null],
  );
  return (rowCount ?? 0) > 0;
}

export type RoleDeletion =
  | { outcome: 'deleted'; revokedGrants: number }
  | { outcome: 'missing' }
  | { outcome: 'system' }
  | { outcome: 'inherited'; by: string[] };

/** Deletes a custom role and every grant of it; system roles and roles others inherit from stay. */
export async function deleteRole(db: Db, name: string): Promise<RoleDeletion> {
  const { rows } = await db.query(
    `SELECT is_system_role AS system,
            ARRAY(SELECT c.name FROM roles c WHERE c.parent_role = r.name ORDER BY c.name) AS children,
            (SELECT count(*)::int FROM user_roles ur WHERE ur.role = r.name) AS grants
       FROM roles r WHERE r.name = $1 FOR UPDATE`,
    [name],
  );
  const role = rows[0] as { system: boolean; children: string[]; grants: number } | undefined;
  if (!role) return { outcome: 'missing' };
  if (role.system) return { outcome: 'system' };
  if (role.children.length > 0) return { outcome: 'inherited', by: role.children };
  // Its grants go with it (user_roles.role ON DELETE CASCADE).
  await db.query('DELETE FROM roles WHERE name = $1', [name]);
  return { outcome: 'deleted', revokedGrants: role.grants };
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
