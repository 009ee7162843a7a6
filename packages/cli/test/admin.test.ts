import * as grpc from '@grpc/grpc-js';
import { connectionlog } from '@mcp/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unary } from '../src/grpc';
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

  it('defines custom roles whose holders may call exactly their permissions and their parent’s; deletes them; all audited', async () => {
    const created = await admin(
      'admin', 'role', 'create', '--name', 'event_recorder', '--permissions', 'connection_logs:write, status:write',
      '--parent', 'viewer', '--description', 'records events and reads its own',
    );
    expect(created.code).toBe(0);
    expect((await admin('admin', 'role', 'create', '--name', 'write_only', '--permissions', 'connection_logs:write')).code).toBe(0);
    const { rows: defined } = await svc.pg.query(
      `SELECT name, permissions, parent_role, is_system_role, description FROM roles WHERE name IN ('event_recorder', 'write_only') ORDER BY name`,
    );
    expect(defined).toEqual([
      { name: 'event_recorder', permissions: ['connection_logs:write', 'status:write'], parent_role: 'viewer', is_system_role: false, description: 'records events and reads its own' },
      { name: 'write_only', permissions: ['connection_logs:write'], parent_role: null, is_system_role: false, description: null },
    ]);

    const holderOf = async (role: string) => {
      const user = await admin('admin', 'user', 'create', '--username', `holds-${role}`, '--email', `${role}@example.test`, '--role', role, '--json');
      expect(user.code).toBe(0);
      const key = await admin('admin', 'key', 'create', '--user', `holds-${role}`, '--name', role);
      return { userId: JSON.parse(user.stdout).userId as string, key: /MCP_API_KEY=(mcp_\S+)/.exec(key.stdout)![1] };
    };
    const recorder = await holderOf('event_recorder');
    const writeOnly = await holderOf('write_only');
    // Through the generated client: the service decides; mcpctl is only the admin side here.
    const c = svc.client;
    const asAdmin = { apiKey: svc.apiKey, deadlineMs: 10_000 };
    const { agent } = await unary(c, c.upsertAgent, connectionlog.UpsertAgentRequest, { agent: { userId: recorder.userId, name: 'recorder-agent', isActive: true } }, asAdmin);
    const agentId = agent!.id;
    const { connection } = await unary(c, c.upsertConnection, connectionlog.UpsertConnectionRequest, {
      connection: { agentId, mcpServerInstanceId: crypto.randomUUID(), isActive: true },
      serverName: 'recorder-server',
    }, asAdmin);
    const connectionId = connection!.id;
    const calls: Array<[string, (ctx: { apiKey: string; deadlineMs: number }) => Promise<unknown>]> = [
      ['RecordEvents (connection_logs:write)', (ctx) =>
        unary(c, c.recordEvents, connectionlog.RecordEventsRequest, { events: [{ connectionId, eventType: connectionlog.EventType.EVENT_TYPE_CONNECTED }] }, ctx)],
      ['ListEvents (connection_logs:read)', (ctx) => unary(c, c.listEvents, connectionlog.ListEventsRequest, {}, ctx)],
      ['GetAgentConnectionLogs (connection_logs:read)', (ctx) => unary(c, c.getAgentConnectionLogs, connectionlog.GetAgentConnectionLogsRequest, { agentId }, ctx)],
      ['GetRecentActivity (connection_logs:read)', (ctx) => unary(c, c.getRecentActivity, connectionlog.GetRecentActivityRequest, {}, ctx)],
      ['UpsertAgent (registry:write)', (ctx) =>
        unary(c, c.upsertAgent, connectionlog.UpsertAgentRequest, { agent: { userId: recorder.userId, name: 'not-allowed', isActive: true } }, ctx)],
      ['UpsertConnection (registry:write)', (ctx) =>
        unary(c, c.upsertConnection, connectionlog.UpsertConnectionRequest, { connection: { agentId, mcpServerInstanceId: crypto.randomUUID() } }, ctx)],
    ];
    const outcome = (key: string, call: (typeof calls)[number][1]) =>
      call({ apiKey: key, deadlineMs: 10_000 }).then(() => 'OK', (err: grpc.ServiceError) => grpc.status[err.code]);
    const outcomesOf = async (key: string) => Object.fromEntries(await Promise.all(calls.map(async ([rpc, call]) => [rpc, await outcome(key, call)])));
    // Its own write, the reads it inherits from viewer, nothing else.
    expect(await outcomesOf(recorder.key)).toEqual({
      'RecordEvents (connection_logs:write)': 'OK',
      'ListEvents (connection_logs:read)': 'OK',
      'GetAgentConnectionLogs (connection_logs:read)': 'OK',
      'GetRecentActivity (connection_logs:read)': 'OK',
      'UpsertAgent (registry:write)': 'PERMISSION_DENIED',
      'UpsertConnection (registry:write)': 'PERMISSION_DENIED',
    });
    // Without a parent, only its own permission.
    expect(await outcomesOf(writeOnly.key)).toEqual({
      'RecordEvents (connection_logs:write)': 'OK',
      'ListEvents (connection_logs:read)': 'PERMISSION_DENIED',
      'GetAgentConnectionLogs (connection_logs:read)': 'PERMISSION_DENIED',
      'GetRecentActivity (connection_logs:read)': 'PERMISSION_DENIED',
      'UpsertAgent (registry:write)': 'PERMISSION_DENIED',
      'UpsertConnection (registry:write)': 'PERMISSION_DENIED',
    });

    const systemRole = await admin('admin', 'role', 'delete', '--name', 'viewer');
    expect(systemRole.code).toBe(2);
    expect(systemRole.stderr).toContain('viewer is a system role');
    const deleted = await admin('admin', 'role', 'delete', '--name', 'write_only');
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toContain('revoked from 1 user(s)');
    await new Promise((r) => setTimeout(r, 200)); // the NOTIFY reaching the service
    expect(await outcome(writeOnly.key, calls[0][1])).toBe('PERMISSION_DENIED');

    const { rows: audited } = await svc.pg.query(
      `SELECT resource_id FROM audit_logs WHERE action_type = $1 ORDER BY created_at, chain_seq`,
      ['identity.role_create'],
    );
    expect(audited.map((r) => r.resource_id)).toEqual(['event_recorder', 'write_only']);
    const { rows: deletions } = await svc.pg.query(`SELECT resource_id FROM audit_logs WHERE action_type = 'identity.role_delete'`);
    expect(deletions).toEqual([{ resource_id: 'write_only' }]);
  });

  it('refuses a bad role definition, naming what is wrong, and changes nothing', async () => {
    const cases: Array<[string[], string]> = [
      [['--name', 'Bad-Name', '--permissions', 'status:read'], '--name: expected'],
      [['--name', 'unknown_permission', '--permissions', 'status:read,status:fly'], '--permissions: unknown status:fly'],
      [['--name', 'everything', '--permissions', '*'], '--permissions: unknown *'],
      [['--name', 'orphan', '--permissions', 'status:read', '--parent', 'nobody'], '--parent: no role "nobody"'],
      [['--name', 'viewer', '--permissions', 'status:read'], 'a role "viewer" exists already'],
    ];
    for (const [args, message] of cases) {
      const res = await admin('admin', 'role', 'create', ...args);
      expect(res.code).toBe(2);
      expect(res.stderr).toContain(message);
    }
    const { rows } = await svc.pg.query(`SELECT name, permissions FROM roles WHERE name IN ('unknown_permission', 'everything', 'orphan', 'viewer')`);
    expect(rows).toEqual([{ name: 'viewer', permissions: ['connection_logs:read', 'status:read', 'audit:read_own'] }]);
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
