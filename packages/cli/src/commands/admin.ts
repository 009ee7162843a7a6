import {
  createRole,
  deleteRole,
  ensureUser,
  findUser,
  grantRole,
  issueApiKey,
  PERMISSIONS,
  recordAdminAction,
  revokeApiKey,
  revokeRole,
} from '@mcp/runtime';
import * as os from 'node:os';
import { Client } from 'pg';
import { UsageError, type ParsedOptions } from '../args';
import { printJson } from '../format';
import type { Command } from './common';

/**
 * Identity administration: users, role grants and API keys live in the
 * database and have no RPC, so these commands connect to DATABASE_URL. Every
 * change commits together with its audit row.
 */
async function inAdminTransaction<T>(usage: string, work: (db: Client, operator: string) => Promise<T>): Promise<T> {
  const url = process.env.DATABASE_URL;
  if (!url) throw new UsageError('admin commands need DATABASE_URL (the platform database)', usage);
  const db = new Client({ connectionString: url, application_name: 'mcpctl-admin' });
  await db.connect();
  try {
    await db.query('BEGIN');
    const result = await work(db, `${os.userInfo().username}@${os.hostname()}`);
    await db.query('COMMIT');
    return result;
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await db.end();
  }
}

async function requireUser(db: Client, opts: ParsedOptions, usage: string): Promise<string> {
  const user = opts.string('user')!;
  const id = await findUser(db, user);
  if (!id) throw new UsageError(`--user: no user "${user}" (give a user id or username)`, usage);
  return id;
}

const DURATION = /^(\d+)(d|h)$/;

export const adminUserCreate: Command = {
  name: 'admin user create',
  summary: 'Creates a user (or finds the one with that username) and grants it roles.',
  options: {
    username: { type: 'string', value: '<name>', description: 'unique username (a service account: its certificate CN for mTLS)', required: true },
    email: { type: 'string', value: '<email>', description: 'email address', required: true },
    'full-name': { type: 'string', value: '<text>', description: 'display name' },
    role: { type: 'string', value: '<role>', description: 'admin|service|viewer|retention_operator|auditor, or a custom role', repeatable: true },
  },
  async run(opts, ctx, usage) {
    const result = await inAdminTransaction(usage, async (db, operator) => {
      const userId = await ensureUser(db, { username: opts.string('username')!, email: opts.string('email')!, fullName: opts.string('full-name') });
      const roles = opts.strings('role');
      for (const role of roles) await grantRole(db, userId, role);
      await recordAdminAction(db, {
        action: 'identity.user_create',
        resourceType: 'user',
        resourceId: userId,
        description: `user ${opts.string('username')} created or found, roles [${roles.join(', ')}] granted by ${operator} (mcpctl admin)`,
      });
      return { userId, roles };
    });
    if (ctx.json) return printJson(result);
    console.log(`user ${result.userId}${result.roles.length ? ` roles: ${result.roles.join(', ')}` : ''}`);
  },
};

function roleCommand(grant: boolean): Command {
  return {
    name: grant ? 'admin role grant' : 'admin role revoke',
    summary: grant ? 'Grants a role to a user.' : 'Revokes a role from a user.',
    options: {
      user: { type: 'string', value: '<id|username>', description: 'the user', required: true },
      role: { type: 'string', value: '<role>', description: 'the role', required: true },
    },
    async run(opts, ctx, usage) {
      const role = opts.string('role')!;
      const userId = await inAdminTransaction(usage, async (db, operator) => {
        const id = await requireUser(db, opts, usage);
        await (grant ? grantRole(db, id, role) : revokeRole(db, id, role));
        await recordAdminAction(db, {
          action: grant ? 'identity.role_grant' : 'identity.role_revoke',
          resourceType: 'user',
          resourceId: id,
          description: `role ${role} ${grant ? 'granted' : 'revoked'} by ${operator} (mcpctl admin)`,
        });
        return id;
      });
      if (ctx.json) return printJson({ userId, role, granted: grant });
      console.log(`${role} ${grant ? 'granted to' : 'revoked from'} ${userId}`);
    },
  };
}
export const adminRoleGrant = roleCommand(true);
export const adminRoleRevoke = roleCommand(false);

/** The roles table's own CHECK on names, checked first for a precise message. */
const ROLE_NAME = /^[a-z][a-z0-9_]{1,62}$/;

function roleName(opts: ParsedOptions, usage: string): string {
  const name = opts.string('name')!;
  if (!ROLE_NAME.test(name)) throw new UsageError(`--name: expected 2-63 characters a-z, 0-9 and _, starting with a letter (got "${name}")`, usage);
  return name;
}

export const adminRoleCreate: Command = {
  name: 'admin role create',
  summary: 'Defines a custom role: its permissions, plus every permission of its parent role.',
  details: [`permissions: ${PERMISSIONS.join(', ')}`],
  options: {
    name: { type: 'string', value: '<role>', description: 'the new role (a-z, 0-9, _)', required: true },
    permissions: { type: 'string', value: '<p,p,...>', description: 'comma-separated permissions, e.g. connection_logs:write,status:read', required: true },
    parent: { type: 'string', value: '<role>', description: 'a role to inherit every permission from, e.g. viewer' },
    description: { type: 'string', value: '<text>', description: 'what the role is for' },
  },
  async run(opts, ctx, usage) {
    const name = roleName(opts, usage);
    const permissions = [...new Set(opts.string('permissions')!.split(',').map((p) => p.trim()).filter((p) => p !== ''))];
    if (permissions.length === 0) throw new UsageError('--permissions: give at least one permission', usage);
    const unknown = permissions.filter((p) => !(PERMISSIONS as readonly string[]).includes(p));
    if (unknown.length > 0) throw new UsageError(`--permissions: unknown ${unknown.join(', ')} (one of ${PERMISSIONS.join(', ')})`, usage);
    const parent = opts.string('parent');
    await inAdminTransaction(usage, async (db, operator) => {
      if (parent !== undefined && (await db.query('SELECT 1 FROM roles WHERE name = $1', [parent])).rowCount === 0) {
        throw new UsageError(`--parent: no role "${parent}"`, usage);
      }
      if (!(await createRole(db, { name, permissions, parent, description: opts.string('description') }))) {
        throw new UsageError(`--name: a role "${name}" exists already`, usage);
      }
      await recordAdminAction(db, {
        action: 'identity.role_create',
        resourceType: 'role',
        resourceId: name,
        description: `role ${name} [${permissions.join(', ')}]${parent ? ` inheriting ${parent}` : ''} created by ${operator} (mcpctl admin)`,
      });
    });
    if (ctx.json) return printJson({ name, permissions, parent: parent ?? null });
    console.log(`role ${name}: ${permissions.join(', ')}${parent ? `, and everything ${parent} may do` : ''}`);
  },
};

export const adminRoleDelete: Command = {
  name: 'admin role delete',
  summary: 'Deletes a custom role and revokes it from everyone who has it.',
  options: { name: { type: 'string', value: '<role>', description: 'the custom role', required: true } },
  async run(opts, ctx, usage) {
    const name = roleName(opts, usage);
    const result = await inAdminTransaction(usage, async (db, operator) => {
      const deletion = await deleteRole(db, name);
      if (deletion.outcome === 'missing') throw new UsageError(`--name: no role "${name}"`, usage);
      if (deletion.outcome === 'system') throw new UsageError(`--name: ${name} is a system role`, usage);
      if (deletion.outcome === 'inherited') throw new UsageError(`--name: ${name} is the parent of ${deletion.by.join(', ')}; delete those first`, usage);
      await recordAdminAction(db, {
        action: 'identity.role_delete',
        resourceType: 'role',
        resourceId: name,
        description: `role ${name} deleted, revoked from ${deletion.revokedGrants} user(s), by ${operator} (mcpctl admin)`,
      });
      return deletion;
    });
    if (ctx.json) return printJson({ name, revokedGrants: result.revokedGrants });
    console.log(`role ${name} deleted (revoked from ${result.revokedGrants} user(s))`);
  },
};

export const adminKeyCreate: Command = {
  name: 'admin key create',
  summary: 'Issues an API key for a user and prints it once: only its hash is stored.',
  options: {
    user: { type: 'string', value: '<id|username>', description: 'the key owner', required: true },
    name: { type: 'string', value: '<text>', description: 'what the key is for', required: true },
    'expires-in': { type: 'string', value: '<N>d|<N>h', description: 'expiry, e.g. 90d (default: none)' },
  },
  async run(opts, ctx, usage) {
    const expiresIn = opts.string('expires-in');
    const match = expiresIn === undefined ? undefined : DURATION.exec(expiresIn);
    if (expiresIn !== undefined && !match) throw new UsageError('--expires-in: expected <N>d or <N>h, e.g. 90d', usage);
    const expiresAt = match ? new Date(Date.now() + Number(match[1]) * (match[2] === 'd' ? 86_400_000 : 3_600_000)) : undefined;
    const key = await inAdminTransaction(usage, async (db, operator) => {
      const userId = await requireUser(db, opts, usage);
      const issued = await issueApiKey(db, { userId, name: opts.string('name')!, expiresAt });
      await recordAdminAction(db, {
        action: 'identity.key_create',
        resourceType: 'api_key',
        resourceId: issued.id,
        description: `API key ${issued.prefix} "${opts.string('name')}" issued to ${userId} by ${operator} (mcpctl admin)`,
      });
      return issued;
    });
    if (ctx.json) return printJson({ id: key.id, prefix: key.prefix, expiresAt: key.expiresAt, key: key.token });
    console.log(`key ${key.prefix} (id ${key.id})${key.expiresAt ? `, expires ${key.expiresAt.toISOString()}` : ''}`);
    console.log(`MCP_API_KEY=${key.token}`);
    console.error('This is the only time the key is shown: store it now.');
  },
};

export const adminKeyRevoke: Command = {
  name: 'admin key revoke',
  summary: 'Revokes an API key; every replica refuses it from its next call.',
  options: {
    prefix: { type: 'string', value: '<prefix>', description: 'the key prefix (12 characters after mcp_)' },
    id: { type: 'string', value: '<uuid>', description: 'the key id' },
    reason: { type: 'string', value: '<text>', description: 'why' },
  },
  async run(opts, ctx, usage) {
    const prefix = opts.string('prefix');
    const id = opts.string('id');
    if (!prefix === !id) throw new UsageError('give exactly one of --prefix or --id', usage);
    const revoked = await inAdminTransaction(usage, async (db, operator) => {
      const done = await revokeApiKey(db, { id, prefix }, undefined, opts.string('reason'));
      if (done) {
        await recordAdminAction(db, {
          action: 'identity.key_revoke',
          resourceType: 'api_key',
          resourceId: id ?? prefix!,
          description: `API key ${prefix ?? id} revoked by ${operator} (mcpctl admin)${opts.string('reason') ? `: ${opts.string('reason')}` : ''}`,
        });
      }
      return done;
    });
    if (ctx.json) return printJson({ revoked });
    console.log(revoked ? 'revoked' : 'no such active key');
    return revoked ? 0 : 1;
  },
};

export const adminKeyList: Command = {
  name: 'admin key list',
  summary: "Lists a user's API keys (prefixes and state, never the keys).",
  options: { user: { type: 'string', value: '<id|username>', description: 'the owner', required: true } },
  async run(opts, ctx, usage) {
    const rows = await inAdminTransaction(usage, async (db) => {
      const userId = await requireUser(db, opts, usage);
      const { rows } = await db.query(
        `SELECT id, name, key_prefix AS prefix, created_at, expires_at, revoked_at, locked_until, last_used_at
           FROM api_keys WHERE user_id = $1 ORDER BY created_at`,
        [userId],
      );
      return rows;
    });
    if (ctx.json) return printJson(rows);
    for (const k of rows) {
      const state = k.revoked_at ? 'revoked' : k.expires_at && k.expires_at < new Date() ? 'expired' : 'active';
      console.log(`${k.prefix}  ${state.padEnd(8)} ${k.name}  (id ${k.id}, last used ${k.last_used_at?.toISOString() ?? 'never'})`);
    }
  },
};
