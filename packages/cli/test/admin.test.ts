import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, runCli, startConnectionLog, type Service } from './helpers';

let svc: Service;

beforeAll(async () => {
  buildCli();
  svc = await startConnectionLog();
});
afterAll(async () => svc?.close());

const admin = (...args: string[]) => runCli(args, { DATABASE_URL: svc.db.url });
const listAs = (key: string) => runCli(['--address', svc.address, 'events', 'list', '--json'], { MCP_API_KEY: key });

describe('mcpctl admin', () => {
  it('creates a user with roles and a key shown once, which works until it is revoked; every change is audited', async () => {
    const user = await admin('admin', 'user', 'create', '--username', 'ops-viewer', '--email', 'ops@example.test', '--role', 'viewer', '--json');
    expect(user.code).toBe(0);
    const { userId } = JSON.parse(user.stdout);

    const created = await admin('admin', 'key', 'create', '--user', 'ops-viewer', '--name', 'dashboards', '--expires-in', '30d');
    expect(created.code).toBe(0);
    const key = /MCP_API_KEY=(mcp_\S+)/.exec(created.stdout)![1];
    expect(created.stderr).toContain('only time the key is shown');
    const { rows: stored } = await svc.pg.query('SELECT key_hash, expires_at FROM api_keys WHERE user_id = $1', [userId]);
    // The base64url secret may itself contain '_', so it is everything after the prefix.
    const [, prefix, secret] = /^mcp_([a-z0-9]{12})_(.+)$/.exec(key)!;
    expect(JSON.stringify(stored)).not.toContain(secret);
    expect(stored[0].expires_at.getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);

    expect((await listAs(key)).code).toBe(0);
    const listed = await admin('admin', 'key', 'list', '--user', userId);
    expect(listed.stdout).toContain(`${prefix}  active`);

    expect((await admin('admin', 'key', 'revoke', '--prefix', prefix, '--reason', 'rotated')).code).toBe(0);
    await new Promise((r) => setTimeout(r, 200)); // the NOTIFY reaching the service
    const refused = await listAs(key);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('UNAUTHENTICATED');

    expect((await admin('admin', 'role', 'grant', '--user', 'ops-viewer', '--role', 'auditor')).code).toBe(0);
    expect((await admin('admin', 'role', 'revoke', '--user', userId, '--role', 'viewer')).code).toBe(0);
    const { rows: roles } = await svc.pg.query('SELECT role FROM user_roles WHERE user_id = $1', [userId]);
    expect(roles.map((r) => r.role)).toEqual(['auditor']);

    const { rows: audited } = await svc.pg.query(
      `SELECT action_type FROM audit_logs WHERE action_type LIKE 'identity.%' ORDER BY created_at, chain_seq`,
    );
    expect(audited.map((r) => r.action_type)).toEqual([
      'identity.user_create',
      'identity.key_create',
      'identity.key_revoke',
      'identity.role_grant',
      'identity.role_revoke',
    ]);
  });

  it('refuses without DATABASE_URL (exit 2) and names an unknown user or role', async () => {
    expect((await runCli(['admin', 'key', 'list', '--user', 'x'], { DATABASE_URL: '' })).code).toBe(2);
    const unknownUser = await admin('admin', 'key', 'create', '--user', 'nobody', '--name', 'n');
    expect(unknownUser.code).toBe(2);
    expect(unknownUser.stderr).toContain('no user "nobody"');
    const unknownRole = await admin('admin', 'role', 'grant', '--user', 'ops-viewer', '--role', 'wizard');
    expect(unknownRole.code).not.toBe(0);
    const { rows } = await svc.pg.query(`SELECT count(*)::int AS n FROM user_roles WHERE role = 'wizard'`);
    expect(rows[0].n).toBe(0);
  });
});
