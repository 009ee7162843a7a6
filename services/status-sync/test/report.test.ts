import * as grpc from '@grpc/grpc-js';
import { statussync } from '@mcp/proto';
import { decodeBadRequest } from '@mcp/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countLogs, createServer, expectGrpcError, startHarness, status, type Harness } from './harness';

const { StatusSource } = statussync;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ reportLimits: { maxBatchSize: 20 } });
});
afterAll(async () => h?.close());

async function auditCount(action: string): Promise<number> {
  const { rows } = await h.pg.query('SELECT count(*)::int AS n FROM audit_logs WHERE action_type = $1', [action]);
  return rows[0].n;
}

async function fieldsOf(promise: Promise<unknown>): Promise<string[]> {
  const err = await expectGrpcError(promise);
  expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
  return decodeBadRequest(err.metadata).map((v) => v.field);
}

describe('registry', () => {
  it('upserts environments and servers, reports created, and audits each write', async () => {
    const envId = crypto.randomUUID();
    const start = new Date(Date.now() + 3_600_000);
    const first = await h.call('upsertEnvironment', {
      environment: { id: envId, name: 'prod-eu', environmentType: statussync.EnvironmentType.ENVIRONMENT_TYPE_PRODUCTION, isActive: true },
    });
    const second = await h.call('upsertEnvironment', {
      environment: {
        id: envId,
        name: 'prod-eu',
        environmentType: statussync.EnvironmentType.ENVIRONMENT_TYPE_PRODUCTION,
        maintenanceWindowStart: start,
        maintenanceWindowEnd: new Date(start.getTime() + 60_000),
        config: '{"region":"eu"}',
        isActive: true,
      },
    });
    expect([first.created, second.created]).toEqual([true, false]);
    expect(second.environment).toMatchObject({ id: envId, maintenanceWindowStart: start, config: '{"region": "eu"}' });

    const { ownerId, serverId } = await createServer(h, 'registry-a', { environmentId: envId, staleAfterSeconds: 30 });
    const renamed = await h.call('upsertServer', {
      server: { id: serverId, name: 'registry-a-renamed', ownerId, environmentId: envId, isEnabled: false },
    });
    expect(renamed.created).toBe(false);
    expect(renamed.server).toMatchObject({
      id: serverId,
      name: 'registry-a-renamed',
      isEnabled: false,
      staleAfterSeconds: 90, // absent on write: the default again
      transport: statussync.Transport.TRANSPORT_STDIO,
      state: statussync.ServerState.SERVER_STATE_PENDING,
      health: statussync.ServerHealth.SERVER_HEALTH_UNKNOWN,
    });
    expect(JSON.parse(renamed.server!.currentStatus)).toEqual({ state: 'PENDING', health: 'UNKNOWN' });
    expect(await auditCount('environment.create')).toBe(1);
    expect(await auditCount('environment.update')).toBe(1);
    expect(await auditCount('mcp_server.create')).toBeGreaterThanOrEqual(1);
    expect(await auditCount('mcp_server.update')).toBe(1);
  });

  it('refuses unknown owners and environments (FAILED_PRECONDITION), taken names (ALREADY_EXISTS), bad fields (INVALID_ARGUMENT)', async () => {
    const unknownOwner = await expectGrpcError(h.call('upsertServer', { server: { name: 'x1', ownerId: crypto.randomUUID() } }));
    expect(unknownOwner.code).toBe(grpc.status.FAILED_PRECONDITION);
    const unknownEnv = await expectGrpcError(h.call('upsertServer', { server: { name: 'x2', environmentId: crypto.randomUUID() } }));
    expect(unknownEnv.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(unknownEnv.details).toContain('environment_id');
    await createServer(h, 'registry-taken');
    expect((await expectGrpcError(h.call('upsertServer', { server: { name: 'registry-taken-server' } }))).code).toBe(grpc.status.ALREADY_EXISTS);
    expect(
      await fieldsOf(h.call('upsertServer', { server: { name: '', staleAfterSeconds: -5, config: '[1]', transport: 42 as statussync.Transport } })),
    ).toEqual(expect.arrayContaining(['server.name', 'server.stale_after_seconds', 'server.config', 'server.transport']));
    expect(
      await fieldsOf(
        h.call('upsertEnvironment', { environment: { name: 'e', maintenanceWindowStart: new Date(2_000), maintenanceWindowEnd: new Date(1_000) } }),
      ),
    ).toEqual(['environment.maintenance_window_end']);
  });
});

describe('ReportStatus', () => {
  it('stores every field of the seed table and makes the report the current status', async () => {
    const { serverId } = await createServer(h, 'report-full');
    const sessionId = crypto.randomUUID();
    const res = await h.call('reportStatus', {
      report: {
        serverId,
        currentStatus: status('RUNNING', 'DEGRADED', { version: '1.2.0' }),
        previousStatus: status('STARTING', 'UNKNOWN'),
        source: StatusSource.STATUS_SOURCE_DTMA,
        details: 'deployed',
        healthCheckResult: '{"ok":false,"checks":["db"]}',
        heartbeatData: '{"seq":7}',
        responseTimeMs: 42,
        uptimeSeconds: '9007199254740993',
        syncSessionId: sessionId,
      },
    });
    expect(res.alreadyRecorded).toBe(false);
    const { rows } = await h.pg.query('SELECT * FROM mcp_server_status_logs WHERE id = $1', [res.entry!.id]);
    expect(rows[0]).toMatchObject({
      server_id: serverId,
      previous_status: { state: 'STARTING', health: 'UNKNOWN' },
      current_status: { state: 'RUNNING', health: 'DEGRADED', version: '1.2.0' },
      source: 'dtma',
      details: 'deployed',
      health_check_result: { ok: false, checks: ['db'] },
      heartbeat_data: { seq: 7 },
      response_time_ms: 42,
      uptime_seconds: '9007199254740993',
      sync_session_id: sessionId,
      batch_id: null,
    });
    expect(rows[0].created_by).toBeTruthy();
    const { rows: servers } = await h.pg.query('SELECT status, health, current_status, last_health_check FROM mcp_servers WHERE id = $1', [serverId]);
    expect(servers[0]).toMatchObject({ status: 'RUNNING', health: 'DEGRADED', current_status: { state: 'RUNNING', health: 'DEGRADED', version: '1.2.0' } });
    expect(servers[0].last_health_check.getTime()).toBe(res.entry!.timestamp!.getTime());
    expect(await auditCount('status.report')).toBeGreaterThanOrEqual(1);
  });

  it('chains history: without previous_status, each row starts where the last one ended (also under concurrency)', async () => {
    const { serverId } = await createServer(h, 'report-chain');
    const states = ['STARTING', 'RUNNING', 'ERROR', 'RUNNING', 'STOPPING', 'STOPPED', 'STARTING', 'RUNNING'];
    await Promise.all(
      states.map((state, i) =>
        h.call('reportStatus', { report: { serverId, currentStatus: status(state, i % 2 ? 'HEALTHY' : 'DEGRADED'), source: StatusSource.STATUS_SOURCE_MANUAL } }),
      ),
    );
    const { rows } = await h.pg.query(
      'SELECT previous_status, current_status FROM mcp_server_status_logs WHERE server_id = $1 ORDER BY timestamp',
      [serverId],
    );
    expect(rows).toHaveLength(states.length);
    expect(rows[0].previous_status).toEqual({ state: 'PENDING', health: 'UNKNOWN' });
    for (let i = 1; i < rows.length; i++) expect(rows[i].previous_status).toEqual(rows[i - 1].current_status);
    const { rows: server } = await h.pg.query('SELECT current_status FROM mcp_servers WHERE id = $1', [serverId]);
    expect(server[0].current_status).toEqual(rows[rows.length - 1].current_status);
  });

  it('is idempotent on report_id, and refuses a report_id reused for another server', async () => {
    const { serverId } = await createServer(h, 'report-retry');
    const reportId = crypto.randomUUID();
    const request = { reportId, report: { serverId, currentStatus: status('RUNNING', 'HEALTHY'), source: StatusSource.STATUS_SOURCE_DTMA } };
    const [a, b] = await Promise.all([h.call('reportStatus', request), h.call('reportStatus', request)]);
    const c = await h.call('reportStatus', request);
    expect([a.alreadyRecorded, b.alreadyRecorded].sort()).toEqual([false, true]);
    expect(c.alreadyRecorded).toBe(true);
    expect(new Set([a.entry!.id, b.entry!.id, c.entry!.id]).size).toBe(1);
    expect(c.entry).toEqual(a.entry!.id === c.entry!.id && !a.alreadyRecorded ? a.entry : b.entry);
    expect(await countLogs(h, serverId)).toBe(1);

    const other = await createServer(h, 'report-retry-other');
    const reused = await expectGrpcError(h.call('reportStatus', { ...request, report: { ...request.report, serverId: other.serverId } }));
    expect(reused.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(await countLogs(h, other.serverId)).toBe(0);
  });

  it('rejects bad input with precise codes and writes nothing', async () => {
    const { serverId } = await createServer(h, 'report-bad');
    const before = await countLogs(h);
    const audits = await auditCount('status.report');
    const ok = { serverId, currentStatus: status('RUNNING', 'HEALTHY'), source: StatusSource.STATUS_SOURCE_MANUAL };
    const unknown = await expectGrpcError(h.call('reportStatus', { report: { ...ok, serverId: crypto.randomUUID() } }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    const cases: Array<[Partial<statussync.StatusReport>, string]> = [
      [{ source: 99 as statussync.StatusSource }, 'report.source'],
      [{ source: StatusSource.STATUS_SOURCE_UNSPECIFIED }, 'report.source'],
      [{ currentStatus: '{"state":' }, 'report.current_status'],
      [{ currentStatus: '"RUNNING"' }, 'report.current_status'],
      [{ currentStatus: status('FLYING', 'HEALTHY') }, 'report.current_status.state'],
      [{ currentStatus: JSON.stringify({ state: 'RUNNING' }) }, 'report.current_status.health'],
      [{ previousStatus: status('RUNNING', 'SO-SO') }, 'report.previous_status.health'],
      [{ healthCheckResult: '{bad json' }, 'report.health_check_result'],
      [{ responseTimeMs: -1 }, 'report.response_time_ms'],
      [{ uptimeSeconds: '-5' }, 'report.uptime_seconds'],
      [{ serverId: 'nope' }, 'report.server_id'],
      [{ syncSessionId: '123' }, 'report.sync_session_id'],
    ];
    for (const [patch, field] of cases) {
      expect(await fieldsOf(h.call('reportStatus', { report: { ...ok, ...patch } })), field).toContain(field);
    }
    expect(await fieldsOf(h.call('reportStatus', { report: ok, reportId: 'x' }))).toEqual(['report_id']);
    expect(await countLogs(h)).toBe(before);
    expect(await auditCount('status.report')).toBe(audits);
  });
});

describe('ReportStatusBatch', () => {
  it('stores a sync session atomically, is idempotent on batch_id, and writes nothing when one report is bad', async () => {
    const servers = await Promise.all([1, 2, 3].map((i) => createServer(h, `batch-${i}`)));
    const batchId = crypto.randomUUID();
    const sessionId = crypto.randomUUID();
    const reports = servers.map((s, i) => ({
      serverId: s.serverId,
      currentStatus: status('RUNNING', i === 2 ? 'DEGRADED' : 'HEALTHY'),
      source: StatusSource.STATUS_SOURCE_DTMA,
    }));
    const first = await h.call('reportStatusBatch', { batchId, syncSessionId: sessionId, reports });
    expect(first.alreadyRecorded).toBe(false);
    expect(first.entries.map((e) => e.serverId)).toEqual(servers.map((s) => s.serverId));
    expect(first.entries.every((e) => e.batchId === batchId && e.syncSessionId === sessionId)).toBe(true);
    const retry = await h.call('reportStatusBatch', { batchId, syncSessionId: sessionId, reports });
    expect(retry).toEqual({ ...first, alreadyRecorded: true });
    for (const s of servers) expect(await countLogs(h, s.serverId)).toBe(1);

    const partlyDifferent = await expectGrpcError(h.call('reportStatusBatch', { batchId, reports: reports.slice(0, 2) }));
    expect(partlyDifferent.code).toBe(grpc.status.FAILED_PRECONDITION);

    const before = await countLogs(h);
    const withUnknown = await expectGrpcError(
      h.call('reportStatusBatch', { batchId: crypto.randomUUID(), reports: [...reports, { ...reports[0], serverId: crypto.randomUUID() }] }),
    );
    expect(withUnknown.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(withUnknown.details).toContain('reports[3].server_id');
    expect(
      await fieldsOf(
        h.call('reportStatusBatch', {
          batchId: crypto.randomUUID(),
          reports: [reports[0], { ...reports[1], responseTimeMs: -3 }, reports[0]],
        }),
      ),
    ).toEqual(['reports[1].response_time_ms', 'reports[2].server_id']);
    expect(await fieldsOf(h.call('reportStatusBatch', { reports }))).toEqual(['batch_id']);
    expect(await fieldsOf(h.call('reportStatusBatch', { batchId: crypto.randomUUID(), reports: Array(21).fill(reports[0]) }))).toEqual(['reports']);
    expect(await countLogs(h)).toBe(before);
    const { rows } = await h.pg.query(`SELECT status, health FROM mcp_servers WHERE id = $1`, [servers[0].serverId]);
    expect(rows[0]).toEqual({ status: 'RUNNING', health: 'HEALTHY' });
  });

  it('needs status:write: a viewer is refused', async () => {
    const viewer = await h.principal('batch-viewer', ['viewer']);
    const err = await expectGrpcError(h.call('reportStatusBatch', { batchId: crypto.randomUUID(), reports: [] }, { token: viewer.token }));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
  });
});
