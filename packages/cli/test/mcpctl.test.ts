import { connectionlog } from '@mcp/proto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/commands';
import { unary } from '../src/grpc';
import { buildCli, insertUser, MCPCTL, runCli, spawnNode, startConnectionLog, type Running, type Service } from './helpers';

let svc: Service;
let userId: string;
let agentId: string;
let connectionId: string;

beforeAll(async () => {
  buildCli();
  svc = await startConnectionLog();
  userId = await insertUser(svc.pg, 'cli');
});
afterAll(async () => svc?.close());

const cli = (...args: string[]) => runCli(['--address', svc.address, ...args], { MCP_API_KEY: svc.apiKey });

function record(details: string): Promise<connectionlog.RecordEventsResponse> {
  return unary(
    svc.client,
    svc.client.recordEvents,
    connectionlog.RecordEventsRequest,
    { events: [{ connectionId, eventType: connectionlog.EventType.EVENT_TYPE_ACTIVATED, eventDetails: details }] },
    { deadlineMs: 10_000, apiKey: svc.apiKey },
  );
}

describe('mcpctl demo', () => {
  it('registers an agent and a connection, records five events and prints them', async () => {
    const res = await cli('demo', '--user-id', userId);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    for (const type of ['connected', 'usage_recorded', 'error', 'status_change', 'disconnected']) expect(res.stdout).toContain(type);
    expect(res.stdout).toContain('recorded    5 events');
    // The authorization header was masked before storage, and the demo shows it.
    expect(res.stdout).toContain('"authorization": "[REDACTED]"');
    expect(res.stdout).not.toContain('demo-secret-token');
    agentId = /^agent\s+(\S+)/m.exec(res.stdout)![1];
    connectionId = /^connection\s+(\S+)/m.exec(res.stdout)![1];
    expect(res.stdout).toContain(`events list --connection-id ${connectionId}`);
    const { rows } = await svc.pg.query('SELECT count(*)::int AS n FROM agent_mcp_connection_logs WHERE connection_id = $1', [connectionId]);
    expect(rows[0].n).toBe(5);
  });

  it('takes the user from MCP_DEV_USER_ID and reuses the same agent and connection', async () => {
    const res = await runCli(['--address', svc.address, '--api-key', svc.apiKey, 'demo', '--json'], { MCP_DEV_USER_ID: userId });
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out.agent.id).toBe(agentId);
    expect(out.connection.id).toBe(connectionId);
    expect(out.events).toHaveLength(5);
  });

  it('without a user id is a usage error (exit 2)', async () => {
    const res = await cli('demo');
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('--user-id is required');
  });
});

describe('mcpctl events record / list', () => {
  it('lists back with --json what was recorded from options', async () => {
    const id = crypto.randomUUID();
    const timestamp = new Date(Date.now() - 5_000).toISOString();
    const rec = await cli(
      'events', 'record', '--connection-id', connectionId, '--type', 'usage_recorded', '--details', 'from the cli',
      '--latency-ms', '12', '--request-json', '{"method":"tools/list","token":"s3cret"}', '--response-json', '[1,2]',
      '--id', id, '--timestamp', timestamp,
    );
    expect(rec.code).toBe(0);
    expect(rec.stdout).toContain(`event ${id}`);
    expect(rec.stdout).toContain('stored');

    const again = await cli('--json', 'events', 'record', '--connection-id', connectionId, '--type', 'usage_recorded', '--id', id, '--timestamp', timestamp);
    expect(JSON.parse(again.stdout).acks[0].alreadyStored).toBe(true);

    const list = await cli('events', 'list', '--connection-id', connectionId, '--type', 'usage_recorded', '--json');
    expect(list.code).toBe(0);
    const { events } = JSON.parse(list.stdout);
    const back = events.find((e: { id: string }) => e.id === id);
    expect(back).toMatchObject({
      id,
      connectionId,
      agentId,
      eventType: 'EVENT_TYPE_USAGE_RECORDED',
      eventDetails: 'from the cli',
      latencyMs: 12,
      timestamp,
    });
    expect(JSON.parse(back.requestData)).toEqual({ method: 'tools/list', token: '[REDACTED]' });
    expect(JSON.parse(back.responseData)).toEqual([1, 2]);
  });

  it('records an NDJSON file in batches and reports duplicates on a second run', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpctl-'));
    const file = path.join(dir, 'events.ndjson');
    const at = Date.now() - 60_000;
    const lines = Array.from({ length: 503 }, (_, i) =>
      JSON.stringify(
        i % 2 === 0
          ? { id: crypto.randomUUID(), timestamp: new Date(at + i).toISOString(), event_type: 'testing', event_details: `line ${i}`, request_data: { i } }
          : { id: crypto.randomUUID(), timestamp: new Date(at + i).toISOString(), connectionId, eventType: 'EVENT_TYPE_CONFIG_UPDATED', latencyMs: i },
      ),
    );
    fs.writeFileSync(file, `${lines.join('\n')}\n\n`);
    const first = await cli('events', 'record', '--file', file, '--connection-id', connectionId);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('503 stored, 0 duplicate (2 batches)');
    const second = await cli('events', 'record', '--file', file, '--connection-id', connectionId);
    expect(second.stdout).toContain('0 stored, 503 duplicate (2 batches)');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pages through with --limit', async () => {
    const res = await cli('events', 'list', '--connection-id', connectionId, '--limit', '150', '--json');
    expect(JSON.parse(res.stdout).events).toHaveLength(150);
    const table = await cli('events', 'list', '--agent-id', agentId, '--errors-only', '--since', '1h');
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^TIME\s+TYPE\s+CONNECTION\s+LATENCY\s+DETAILS/);
    expect(table.stdout).toContain('error');
    expect(table.stdout).not.toContain('usage_recorded');
  });

  it('prints the field violation of a bad --connection-id and exits 1', async () => {
    const res = await cli('events', 'record', '--connection-id', 'x', '--type', 'connected');
    expect(res.code).toBe(1);
    const lines = res.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^error: INVALID_ARGUMENT: /);
    expect(lines).toContain('  events[0].connection_id: not a UUID');
  });

  it('says which line of a file was rejected', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpctl-'));
    const file = path.join(dir, 'bad.ndjson');
    fs.writeFileSync(file, [JSON.stringify({ connection_id: connectionId, event_type: 'connected' }), JSON.stringify({ connection_id: 'nope', event_type: 'connected' })].join('\n'));
    const res = await cli('events', 'record', '--file', file);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('line 2: events[1].connection_id: not a UUID');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('mcpctl events tail', () => {
  async function stopTail(tail: Running): Promise<string> {
    tail.child.kill('SIGINT');
    const { code } = await tail.exited;
    expect(code).toBe(0);
    const cursor = /^cursor: (\S+)$/m.exec(tail.stderr())?.[1];
    expect(cursor).toBeTruthy();
    return cursor!;
  }
  const printed = (tail: Running) =>
    tail
      .stdout()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { event: { id: string; eventDetails?: string }; cursor: string });

  it('prints events recorded after it started, and --cursor resumes with no duplicate', async () => {
    const tail = spawnNode(MCPCTL, ['--address', svc.address, 'events', 'tail', '--connection-id', connectionId, '--json'], { MCP_API_KEY: svc.apiKey });
    await tail.waitFor(() => tail.stderr().includes('tailing'), 'the tail to start');
    // The tail starts at "now" as the server sees it: record until one arrives.
    for (let i = 0; printed(tail).length === 0; i++) {
      if (i > 100) throw new Error(`tail printed nothing\n${tail.stderr()}`);
      await record(`probe ${i}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const a = await record('A');
    await tail.waitFor(() => printed(tail).some((p) => p.event.id === a.acks[0].id), 'event A');
    const cursor = await stopTail(tail);
    const first = printed(tail);
    expect(first.at(-1)!.event.id).toBe(a.acks[0].id);
    expect(cursor).toBe(first.at(-1)!.cursor);
    expect(new Set(first.map((p) => p.event.id)).size).toBe(first.length);

    // Recorded while nobody tails.
    const b = await record('B');
    const c = await record('C');
    const resumed = spawnNode(MCPCTL, ['--address', svc.address, 'events', 'tail', '--connection-id', connectionId, '--json', '--cursor', cursor], {
      MCP_API_KEY: svc.apiKey,
    });
    await resumed.waitFor(() => printed(resumed).length >= 2, 'B and C');
    const d = await record('D');
    await resumed.waitFor(() => printed(resumed).length >= 3, 'D');
    await new Promise((r) => setTimeout(r, 500));
    await stopTail(resumed);
    expect(printed(resumed).map((p) => p.event.id)).toEqual([b.acks[0].id, c.acks[0].id, d.acks[0].id]);
  });

  it('reconnects from its cursor when the service restarts, printing each event once', async () => {
    const tail = spawnNode(MCPCTL, ['--address', svc.address, 'events', 'tail', '--connection-id', connectionId, '--json'], { MCP_API_KEY: svc.apiKey });
    await tail.waitFor(() => tail.stderr().includes('tailing'), 'the tail to start');
    for (let i = 0; printed(tail).length === 0; i++) {
      if (i > 100) throw new Error('tail printed nothing');
      await record(`before restart ${i}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const before = printed(tail).length;
    // Restart: same database, same port.
    await svc.service.shutdown('restart');
    await tail.waitFor(() => /reconnecting/.test(tail.stderr()), 'the tail to notice');
    const restarted = await startConnectionLog({ db: svc.db, port: svc.service.server.port });
    const old = svc;
    svc = { ...restarted, close: async () => (await restarted.close(), await old.close()) };
    const after = await record('after restart');
    await tail.waitFor(() => printed(tail).some((p) => p.event.id === after.acks[0].id), 'the event recorded after the restart');
    await new Promise((r) => setTimeout(r, 500));
    await stopTail(tail);
    const ids = printed(tail).map((p) => p.event.id);
    expect(ids.length).toBeGreaterThan(before);
    expect(ids.at(-1)).toBe(after.acks[0].id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('prints a table line per event without --json', async () => {
    const tail = spawnNode(MCPCTL, ['--address', svc.address, 'events', 'tail', '--agent-id', agentId, '--type', 'activated'], { MCP_API_KEY: svc.apiKey });
    await tail.waitFor(() => tail.stderr().includes('tailing'), 'the tail to start');
    for (let i = 0; !tail.stdout().includes('table probe'); i++) {
      if (i > 100) throw new Error('tail printed nothing');
      await record('table probe');
      await new Promise((r) => setTimeout(r, 100));
    }
    await stopTail(tail);
    expect(tail.stdout()).toMatch(/^TIME\s+TYPE\s+CONNECTION/);
    expect(tail.stdout()).toMatch(new RegExp(`activated\\s+${connectionId}\\s+-\\s+table probe`));
    expect(tail.stderr()).toMatch(/resume with: mcpctl events tail --cursor \S+ --agent-id/);
  });
});

describe('other commands', () => {
  it('agent-logs and activity print the seed function and view', async () => {
    const logs = await cli('agent-logs', '--agent-id', agentId, '--hours', '2', '--limit', '5');
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain('demo-filesystem-server');
    const json = await cli('--json', 'activity', '--limit', '3');
    expect(JSON.parse(json.stdout).activity).toHaveLength(3);
    const activity = await cli('activity');
    expect(activity.stdout).toContain('cli@example.test');
  });

  it('agent upsert and connection upsert register and update', async () => {
    const created = await cli('--json', 'agent', 'upsert', '--user-id', userId, '--name', 'second');
    const agent = JSON.parse(created.stdout);
    expect(agent.created).toBe(true);
    const updated = await cli('agent', 'upsert', '--user-id', userId, '--name', 'renamed', '--id', agent.agent.id, '--inactive');
    expect(updated.stdout).toContain(`agent ${agent.agent.id} updated`);
    expect(updated.stdout).toMatch(/active:\s+false/);
    const serverId = crypto.randomUUID();
    const noName = await cli('connection', 'upsert', '--agent-id', agent.agent.id, '--server-id', serverId);
    expect(noName.code).toBe(1);
    expect(noName.stderr).toMatch(/^error: FAILED_PRECONDITION: /);
    const conn = await cli('connection', 'upsert', '--agent-id', agent.agent.id, '--server-id', serverId, '--server-name', 'srv', '--status', 'active');
    expect(conn.code).toBe(0);
    expect(conn.stdout).toMatch(/^connection \S+ created/);
  });

  it('health reports SERVING', async () => {
    const res = await cli('health');
    expect(res).toMatchObject({ code: 0, stdout: `${svc.address}: SERVING\n` });
    const named = await cli('--json', 'health', '--service', 'mcp.connectionlog.v1.ConnectionLogService');
    expect(JSON.parse(named.stdout)).toEqual({ status: 'SERVING' });
  });

  it('without an API key: UNAUTHENTICATED, with a hint', async () => {
    const res = await runCli(['--address', svc.address, 'activity']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^error: UNAUTHENTICATED: /);
    expect(res.stderr).toContain('MCP_API_KEY');
  });

  it('UNAVAILABLE names the address', async () => {
    const res = await runCli(['--address', '127.0.0.1:1', '--deadline-ms', '2000', 'activity']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^error: (UNAVAILABLE|DEADLINE_EXCEEDED): /);
  });

  it('has --help for every command, and usage errors exit 2', async () => {
    const helps = await Promise.all(COMMANDS.map((c) => runCli([...c.name.split(' '), '--help'])));
    COMMANDS.forEach((command, i) => {
      expect(helps[i].code, command.name).toBe(0);
      expect(helps[i].stdout).toContain(`usage: mcpctl ${command.name} [options]`);
      for (const option of Object.keys(command.options)) expect(helps[i].stdout).toContain(`--${option}`);
    });
    expect((await runCli(['--help'])).stdout).toContain('events tail');
    expect((await runCli(['events', '--help'])).stdout).toContain('events record');
    const bad = [['nope'], ['events'], ['events', 'list', '--bogus'], ['events', 'list', '--limit', 'x'], ['agent', 'upsert', '--name', 'n'], ['events', 'list', '--since', 'yesterday']];
    const results = await Promise.all(bad.map((args) => runCli(args)));
    bad.forEach((args, i) => {
      expect(results[i].code, args.join(' ')).toBe(2);
      expect(results[i].stderr).toMatch(/^error: /);
    });
  });
});
