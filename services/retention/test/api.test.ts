import * as grpc from '@grpc/grpc-js';
import { checkEntityDrift, createDataSource } from '@mcp/db';
import { retention } from '@mcp/proto';
import { decodeBadRequest } from '@mcp/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retentionEntities } from '../src';
import { count, createFixture, expectGrpcError, startHarness, type Fixture, type Harness } from './harness';

const { HoldSubjectType } = retention;
let h: Harness;
let fx: Fixture;

beforeAll(async () => {
  h = await startHarness();
  fx = await createFixture(h.pg, 'api');
});
afterAll(async () => h?.close());

async function expectInvalid(call: Promise<unknown>, field: string): Promise<void> {
  const err = await expectGrpcError(call);
  expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
  expect(decodeBadRequest(err.metadata).map((v) => v.field)).toContain(field);
}

describe('policies', () => {
  it('start as the seeds say, reconciled: 90/30 days hot, archived until 1 year / 6 months, audit archived after 90 days', async () => {
    const { policies } = await h.call('listPolicies', {});
    expect(policies.map((p) => [p.table, p.hotDays, p.archiveBeforeDelete, p.archiveDays, p.enabled, p.expectedIntervalHours])).toEqual([
      ['agent_mcp_connection_logs', 90, true, 275, true, 26],
      ['audit_logs', 90, true, undefined, true, 26],
      ['mcp_server_status_logs', 30, true, 152, true, 26],
    ]);
    // Never run, but created just now: not overdue yet.
    expect(policies.every((p) => !p.overdue && p.lastSucceededAt === undefined)).toBe(true);
  });

  it('UpsertPolicy replaces a policy and audits the change in the same transaction', async () => {
    const { policy } = await h.call('upsertPolicy', {
      policy: { table: 'mcp_server_status_logs', hotDays: 14, archiveBeforeDelete: false, enabled: true, expectedIntervalHours: 2 },
    });
    expect(policy).toMatchObject({ table: 'mcp_server_status_logs', hotDays: 14, archiveBeforeDelete: false, archiveDays: undefined, expectedIntervalHours: 2 });
    const { rows } = await h.pg.query(
      `SELECT request_data FROM audit_logs WHERE action_type = 'retention_policy.upsert' AND resource_id = 'mcp_server_status_logs'`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0].request_data.before.hot_days).toBe(30);
    expect(rows[0].request_data.after.hot_days).toBe(14);
  });

  const bad: Array<[string, Partial<retention.Policy>, string]> = [
    ['unknown table', { table: 'users', hotDays: 5 }, 'policy.table'],
    ['missing table', { table: '', hotDays: 5 }, 'policy.table'],
    ['zero hot days', { table: 'audit_logs', hotDays: 0 }, 'policy.hot_days'],
    ['negative hot days', { table: 'audit_logs', hotDays: -3 }, 'policy.hot_days'],
    ['zero archive days', { table: 'audit_logs', hotDays: 5, archiveDays: 0 }, 'policy.archive_days'],
    ['negative archive days', { table: 'audit_logs', hotDays: 5, archiveDays: -1 }, 'policy.archive_days'],
    ['interval out of range', { table: 'audit_logs', hotDays: 5, expectedIntervalHours: -2 }, 'policy.expected_interval_hours'],
  ];
  it.each(bad)('UpsertPolicy refuses %s with INVALID_ARGUMENT and changes nothing', async (_name, policy, field) => {
    const before = await h.call('listPolicies', {});
    await expectInvalid(h.call('upsertPolicy', { policy: { enabled: true, ...policy } }), field);
    expect(await h.call('listPolicies', {})).toEqual(before);
  });

  it('RunRetention: missing policy is INVALID_ARGUMENT, unknown is NOT_FOUND, disabled is FAILED_PRECONDITION', async () => {
    await expectInvalid(h.call('runRetention', { policy: '' }), 'policy');
    const unknown = await expectGrpcError(h.call('runRetention', { policy: 'users' }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    await h.call('upsertPolicy', { policy: { table: 'audit_logs', hotDays: 90, archiveBeforeDelete: true, enabled: false } });
    const disabled = await expectGrpcError(h.call('runRetention', { policy: 'audit_logs' }));
    expect(disabled.code).toBe(grpc.status.FAILED_PRECONDITION);
    // "all" skips disabled policies.
    const { run } = await h.call('runRetention', { policy: 'all', dryRun: true });
    expect(run!.tables.map((t) => t.table)).toEqual(['agent_mcp_connection_logs', 'mcp_server_status_logs']);
    await h.call('upsertPolicy', { policy: { table: 'audit_logs', hotDays: 90, archiveBeforeDelete: true, enabled: true } });
  });

  it('a policy with no success within its expected interval is overdue, until a run succeeds', async () => {
    await h.pg.query(`UPDATE retention_policies SET updated_at = now() - interval '3 hours' WHERE table_name = 'mcp_server_status_logs'`);
    const listed = await h.call('listRuns', {});
    expect(listed.overdue.map((o) => o.table)).toEqual(['mcp_server_status_logs']);
    await h.call('runRetention', { policy: 'mcp_server_status_logs' });
    const after = await h.call('listPolicies', {});
    const status = after.policies.find((p) => p.table === 'mcp_server_status_logs')!;
    expect(status.overdue).toBe(false);
    expect(status.lastSucceededAt).toBeInstanceOf(Date);
    expect((await h.call('listRuns', {})).overdue).toEqual([]);
  });
});

describe('runs history', () => {
  it('ListRuns pages newest first; GetRun validates its id', async () => {
    for (let i = 0; i < 3; i++) await h.call('runRetention', { policy: 'all', dryRun: true });
    const first = await h.call('listRuns', { pageSize: 2 });
    expect(first.runs).toHaveLength(2);
    const second = await h.call('listRuns', { pageSize: 2, pageToken: first.nextPageToken });
    const ids = [...first.runs, ...second.runs].map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    const started = [...first.runs, ...second.runs].map((r) => r.startedAt!.getTime());
    expect(started).toEqual([...started].sort((a, b) => b - a));
    await expectInvalid(h.call('getRun', { id: 'nope' }), 'id');
    const missing = await expectGrpcError(h.call('getRun', { id: crypto.randomUUID() }));
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
    await expectInvalid(h.call('listRuns', { pageToken: 'garbage' }), 'page_token');
  });
});

describe('legal holds', () => {
  it('place, list, release; each change is audited', async () => {
    const { hold } = await h.call('placeLegalHold', {
      subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_AGENT,
      subjectId: fx.agentId,
      startTime: new Date('2025-01-01T00:00:00Z'),
      reason: 'investigation 7',
    });
    expect(hold).toMatchObject({ subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_AGENT, subjectId: fx.agentId, reason: 'investigation 7' });
    const range = await h.call('placeLegalHold', {
      subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_TIME_RANGE,
      startTime: new Date('2025-02-01T00:00:00Z'),
      endTime: new Date('2025-03-01T00:00:00Z'),
      reason: 'quarter under audit',
    });
    expect((await h.call('listLegalHolds', {})).holds.map((x) => x.id)).toEqual([range.hold!.id, hold!.id]);

    const released = await h.call('releaseLegalHold', { id: hold!.id, reason: 'done' });
    expect(released.hold!.releasedAt).toBeInstanceOf(Date);
    expect((await h.call('listLegalHolds', {})).holds.map((x) => x.id)).toEqual([range.hold!.id]);
    expect((await h.call('listLegalHolds', { includeReleased: true })).holds).toHaveLength(2);
    const again = await expectGrpcError(h.call('releaseLegalHold', { id: hold!.id }));
    expect(again.code).toBe(grpc.status.FAILED_PRECONDITION);
    const unknown = await expectGrpcError(h.call('releaseLegalHold', { id: crypto.randomUUID() }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);

    const { rows } = await h.pg.query(`SELECT action_type FROM audit_logs WHERE resource_id = $1 ORDER BY created_at`, [hold!.id]);
    expect(rows.map((r) => r.action_type)).toEqual(['legal_hold.place', 'legal_hold.release']);
  });

  const bad: Array<[string, Partial<retention.PlaceLegalHoldRequest>, string]> = [
    ['no subject type', { subjectId: crypto.randomUUID(), reason: 'x' }, 'subject_type'],
    ['user without id', { subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_USER, reason: 'x' }, 'subject_id'],
    ['malformed id', { subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_SERVER, subjectId: 'srv-1', reason: 'x' }, 'subject_id'],
    ['time range with a subject', { subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_TIME_RANGE, subjectId: crypto.randomUUID(), startTime: new Date(), reason: 'x' }, 'subject_id'],
    ['time range without bounds', { subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_TIME_RANGE, reason: 'x' }, 'start_time'],
    ['end before start', { subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_TIME_RANGE, startTime: new Date(2025, 1), endTime: new Date(2025, 0), reason: 'x' }, 'end_time'],
    ['no reason', { subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_USER, subjectId: crypto.randomUUID() }, 'reason'],
  ];
  it.each(bad)('PlaceLegalHold refuses %s with INVALID_ARGUMENT and writes nothing', async (_name, req, field) => {
    const before = await count(h.pg, 'legal_holds');
    await expectInvalid(h.call('placeLegalHold', req), field);
    expect(await count(h.pg, 'legal_holds')).toBe(before);
  });

  it('refuses a hold on a subject that does not exist with FAILED_PRECONDITION', async () => {
    const before = await count(h.pg, 'legal_holds');
    const err = await expectGrpcError(
      h.call('placeLegalHold', { subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_USER, subjectId: crypto.randomUUID(), reason: 'x' }),
    );
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(await count(h.pg, 'legal_holds')).toBe(before);
  });
});

describe('permissions', () => {
  it('retention_operator runs and manages holds; a viewer may do neither', async () => {
    const operator = await h.principal('ret-operator', ['retention_operator']);
    const viewer = await h.principal('ret-viewer', ['viewer']);
    const { run } = await h.call('runRetention', { policy: 'all', dryRun: true }, { token: operator.token });
    expect(run!.requestedBy).toBe(operator.userId);
    // Started one at a time: a call started early would reject before anything awaits it.
    for (const call of [
      () => h.call('runRetention', { policy: 'all', dryRun: true }, { token: viewer.token }),
      () => h.call('listRuns', {}, { token: viewer.token }),
      () => h.call('placeLegalHold', { subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_USER, subjectId: fx.userId, reason: 'x' }, { token: viewer.token }),
    ]) {
      expect((await expectGrpcError(call())).code).toBe(grpc.status.PERMISSION_DENIED);
    }
  });
});

describe('schema', () => {
  it('entities match the migrated tables', async () => {
    const ds = createDataSource({ url: h.db.url, entities: retentionEntities, poolSize: 1 });
    await ds.initialize();
    try {
      expect(await checkEntityDrift(ds)).toEqual([]);
    } finally {
      await ds.destroy();
    }
  });
});
