import * as grpc from '@grpc/grpc-js';
import { checkEntityDrift, createDataSource } from '@mcp/db';
import { audit } from '@mcp/proto';
import { decodeBadRequest } from '@mcp/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEntities } from '../src';
import { collect, countAuditRows, expectGrpcError, startHarness, type DeepPartial, type Harness } from './harness';

let h: Harness;
let alice: { userId: string; token: string };
let bob: { userId: string; token: string };
let auditor: { userId: string; token: string };
let writer: { userId: string; token: string };
const base = Date.now() - 3_600_000;

beforeAll(async () => {
  h = await startHarness({ ingestLimits: { maxBatchSize: 50 } });
  alice = await h.principal('alice', ['viewer']);
  bob = await h.principal('bob', ['viewer']);
  auditor = await h.principal('audrey', ['auditor']);
  writer = await h.principal('svc-writer', ['service']);
  const actions = ['server.start', 'server.stop', 'config.update'];
  for (const [who, n] of [[alice, 30], [bob, 12]] as const) {
    await h.call(
      'recordAuditEvents',
      {
        events: Array.from({ length: n }, (_, i) => ({
          id: crypto.randomUUID(),
          createdAt: new Date(base + i * 60_000),
          userId: who.userId,
          actionType: actions[i % 3],
          resourceType: 'mcp_server',
          resourceId: `srv-${i % 4}`,
          description: i % 5 === 0 ? `restarted the payments gateway after crash ${i}` : `routine maintenance ${i}`,
          durationMs: 10 * (i + 1),
          success: i % 7 !== 0,
        })),
      },
      { token: writer.token },
    );
  }
});
afterAll(async () => h?.close());

async function searchAll(filter: Partial<audit.AuditFilter>, token?: string, pageSize = 7): Promise<audit.AuditEvent[]> {
  const out: audit.AuditEvent[] = [];
  let pageToken = '';
  do {
    const res = await h.call('searchAuditLogs', { filter, pageSize, pageToken }, { token });
    out.push(...res.events);
    pageToken = res.nextPageToken;
  } while (pageToken);
  return out;
}

describe('RecordAuditEvents', () => {
  it('stores every field, chains it, and reads it back exactly', async () => {
    const at = new Date(Date.now() - 5_000);
    const full = {
      id: crypto.randomUUID(),
      createdAt: at,
      userId: alice.userId,
      actionType: 'key.rotate',
      resourceType: 'api_key',
      resourceId: 'key-1',
      mcpServerId: crypto.randomUUID(),
      description: 'rotated key',
      requestData: JSON.stringify({ reason: 'scheduled', list: [1, 2] }),
      responseData: JSON.stringify({ ok: true }),
      statusCode: 200,
      durationMs: 12,
      success: false,
      errorMessage: 'partial',
      ipAddress: '2001:db8::7',
      userAgent: 'cli/2.0',
      sessionId: 'sess-9',
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    };
    const res = await h.call('recordAuditEvents', { events: [full] }, { token: writer.token });
    expect(res).toMatchObject({ storedCount: 1, duplicateCount: 0 });
    expect(res.acks[0]).toMatchObject({ id: full.id, createdAt: at, alreadyStored: false });
    const [back] = await searchAll({ traceId: full.traceId });
    // JSON comes back normalised by jsonb (key order, spacing): compared as values.
    expect({ ...back, requestData: JSON.parse(back.requestData!), responseData: JSON.parse(back.responseData!) }).toMatchObject({
      ...full,
      requestData: { reason: 'scheduled', list: [1, 2] },
      responseData: { ok: true },
      chainSequence: res.acks[0].chainSequence,
      personalDataErased: false,
    });
    expect(back.rowHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('defaults the actor to the caller and success to true, and assigns time-ordered ids', async () => {
    const res = await h.call('recordAuditEvents', { events: [{ actionType: 'self.check' }] }, { token: writer.token });
    const [row] = await searchAll({ actionTypes: ['self.check'] });
    expect(row).toMatchObject({ id: res.acks[0].id, userId: writer.userId, success: true });
    expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
  });

  it('stores a retried batch once, reporting the chain positions of what was already stored', async () => {
    const at = new Date();
    const batch = [
      { id: crypto.randomUUID(), createdAt: at, actionType: 'retry.a' },
      { id: crypto.randomUUID(), createdAt: at, actionType: 'retry.b' },
    ];
    const before = await countAuditRows(h);
    const first = await h.call('recordAuditEvents', { events: batch });
    const retry = await h.call('recordAuditEvents', { events: [...batch, { id: crypto.randomUUID(), createdAt: at, actionType: 'retry.c' }] });
    expect(retry).toMatchObject({ storedCount: 1, duplicateCount: 2 });
    expect(retry.acks.map((a) => a.alreadyStored)).toEqual([true, true, false]);
    expect(retry.acks.slice(0, 2).map((a) => a.chainSequence)).toEqual(first.acks.map((a) => a.chainSequence));
    expect(await countAuditRows(h)).toBe(before + 3);
  });

  it('masks secrets before they reach the table', async () => {
    const { acks } = await h.call('recordAuditEvents', {
      events: [{ actionType: 'login', description: 'Authorization: Bearer abc.def.ghi', requestData: JSON.stringify({ password: 'hunter2', user: 'x' }) }],
    });
    const { rows } = await h.pg.query('SELECT description, request_data::text AS req FROM audit_logs WHERE id = $1', [acks[0].id]);
    expect(JSON.stringify(rows[0])).not.toMatch(/hunter2|abc\.def\.ghi/);
    expect(JSON.parse(rows[0].req).user).toBe('x');
  });

  const cases: Array<[string, () => Array<Partial<audit.AuditEvent>>, string]> = [
    ['empty batch', () => [], 'events'],
    ['batch over the limit', () => Array.from({ length: 51 }, () => ({ actionType: 'x' })), 'events'],
    ['missing action type', () => [{ actionType: '' }], 'events[0].action_type'],
    ['bad actor', () => [{ actionType: 'x', userId: 'bob' }], 'events[0].user_id'],
    ['id without time', () => [{ actionType: 'x', id: crypto.randomUUID() }], 'events[0].created_at'],
    ['bad trace id', () => [{ actionType: 'x', traceId: 'XYZ' }], 'events[0].trace_id'],
    ['all-zero trace id', () => [{ actionType: 'x', traceId: '0'.repeat(32) }], 'events[0].trace_id'],
    ['negative duration', () => [{ actionType: 'x', durationMs: -1 }], 'events[0].duration_ms'],
    ['bad status code', () => [{ actionType: 'x', statusCode: 1000 }], 'events[0].status_code'],
    ['bad address', () => [{ actionType: 'x', ipAddress: '1.2.3' }], 'events[0].ip_address'],
    ['malformed JSON', () => [{ actionType: 'x', requestData: '{' }], 'events[0].request_data'],
    ['time far in the future', () => [{ actionType: 'x', createdAt: new Date(Date.now() + 86_400_000) }], 'events[0].created_at'],
    ['one bad event among good ones', () => [{ actionType: 'x' }, { actionType: 'x', mcpServerId: 'nope' }], 'events[1].mcp_server_id'],
  ];
  it.each(cases)('rejects %s with INVALID_ARGUMENT and writes nothing', async (_name, events, field) => {
    const before = await countAuditRows(h);
    const err = await expectGrpcError(h.call('recordAuditEvents', { events: events() }));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(decodeBadRequest(err.metadata).map((v) => v.field)).toContain(field);
    expect(await countAuditRows(h)).toBe(before);
  });

  it('requires audit:write', async () => {
    const err = await expectGrpcError(h.call('recordAuditEvents', { events: [{ actionType: 'x' }] }, { token: alice.token }));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
  });
});

describe('SearchAuditLogs', () => {
  it('filters by actor, action, resource and outcome, newest first, across pages', async () => {
    const rows = await searchAll({ userIds: [alice.userId], actionTypes: ['server.start'], resourceType: 'mcp_server' });
    expect(rows).toHaveLength(10);
    const times = rows.map((r) => r.createdAt!.getTime());
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(await searchAll({ userIds: [alice.userId], resourceType: 'mcp_server', success: false })).toHaveLength(5);
    expect(await searchAll({ userIds: [bob.userId], resourceId: 'srv-1' })).toHaveLength(3);
  });

  it('filters by server', async () => {
    const [gateway, registry] = [crypto.randomUUID(), crypto.randomUUID()];
    const at = (i: number) => new Date(Date.now() - 10_000 + i * 1000);
    const { acks } = await h.call(
      'recordAuditEvents',
      {
        events: [
          { actionType: 'server.probe', createdAt: at(0), mcpServerId: gateway },
          { actionType: 'server.probe', createdAt: at(1), mcpServerId: registry },
          { actionType: 'server.probe', createdAt: at(2), mcpServerId: gateway },
          { actionType: 'server.probe', createdAt: at(3) },
        ],
      },
      { token: writer.token },
    );
    const onGateway = await searchAll({ mcpServerId: gateway }, auditor.token, 1);
    expect(onGateway.map((r) => r.id)).toEqual([acks[2].id, acks[0].id]);
    expect(onGateway.every((r) => r.mcpServerId === gateway)).toBe(true);
    expect((await searchAll({ mcpServerId: registry }, auditor.token)).map((r) => r.id)).toEqual([acks[1].id]);
    expect(await searchAll({ mcpServerId: crypto.randomUUID() }, auditor.token)).toEqual([]);
  });

  it('full-text searches the description through the seed GIN index', async () => {
    const rows = await searchAll({ text: 'payment gateways restart' });
    expect(rows.map((r) => r.description).sort()).toEqual(
      [0, 5, 10, 15, 20, 25, 0, 5, 10].map((i) => `restarted the payments gateway after crash ${i}`).sort(),
    );
    // The planner would scan a table this small; forbid that to see that the predicate matches the index.
    await h.pg.query('BEGIN');
    await h.pg.query('SET LOCAL enable_seqscan = off');
    const { rows: plan } = await h.pg.query(
      `EXPLAIN SELECT id FROM audit_logs a WHERE to_tsvector('english', a.description) @@ plainto_tsquery('english', 'payments')`,
    );
    await h.pg.query('ROLLBACK');
    expect(plan.map((p: { 'QUERY PLAN': string }) => p['QUERY PLAN']).join('\n')).toMatch(/Bitmap Index Scan on audit_logs_\w+_to_tsvector_idx/);
  });

  it('filters by a half-open time range', async () => {
    const rows = await searchAll({ userIds: [alice.userId], startTime: new Date(base + 10 * 60_000), endTime: new Date(base + 20 * 60_000) });
    expect(rows.map((r) => r.durationMs)).toEqual([200, 190, 180, 170, 160, 150, 140, 130, 120, 110]);
  });

  it('shows a viewer only their own rows (row-level security); auditors see everyone', async () => {
    const mine = await searchAll({}, alice.token);
    expect(mine.length).toBeGreaterThanOrEqual(30);
    expect(new Set(mine.map((r) => r.userId))).toEqual(new Set([alice.userId]));
    expect(await searchAll({ userIds: [bob.userId] }, alice.token)).toHaveLength(0);
    const all = await searchAll({ userIds: [alice.userId, bob.userId] }, auditor.token, 100);
    expect(new Set(all.map((r) => r.userId))).toEqual(new Set([alice.userId, bob.userId]));
  });

  it('rejects bad filters and replayed tokens', async () => {
    const cases: Array<[Partial<audit.SearchAuditLogsRequest>, string]> = [
      [{ filter: { userIds: ['x'] } as audit.AuditFilter }, 'filter.user_ids[0]'],
      [{ filter: { mcpServerId: '1' } as audit.AuditFilter }, 'filter.mcp_server_id'],
      [{ filter: { startTime: new Date(2), endTime: new Date(1) } as audit.AuditFilter }, 'filter.end_time'],
      [{ filter: { traceId: 'abc' } as audit.AuditFilter }, 'filter.trace_id'],
      [{ pageToken: 'garbage!' }, 'page_token'],
    ];
    for (const [req, field] of cases) {
      const err = await expectGrpcError(h.call('searchAuditLogs', req));
      expect(err.code, field).toBe(grpc.status.INVALID_ARGUMENT);
      expect(decodeBadRequest(err.metadata).map((v) => v.field)).toContain(field);
    }
    const first = await h.call('searchAuditLogs', { filter: { userIds: [alice.userId] }, pageSize: 2 });
    const err = await expectGrpcError(h.call('searchAuditLogs', { filter: { userIds: [bob.userId] }, pageToken: first.nextPageToken }));
    expect(err.details).toContain('different request');
  });
});

describe('SummarizeActivity', () => {
  it('returns the seed query: count and average duration per action type', async () => {
    const res = await h.call('summarizeActivity', { userId: bob.userId, startTime: new Date(base - 1), endTime: new Date() }, { token: auditor.token });
    expect(res.actions).toEqual([
      { actionType: 'config.update', count: '4', averageDurationMs: (30 + 60 + 90 + 120) / 4 },
      { actionType: 'server.start', count: '4', averageDurationMs: (10 + 40 + 70 + 100) / 4 },
      { actionType: 'server.stop', count: '4', averageDurationMs: (20 + 50 + 80 + 110) / 4 },
    ]);
  });

  it('defaults to the caller over the last 24 hours; another user needs audit:read', async () => {
    const own = await h.call('summarizeActivity', {}, { token: alice.token });
    expect(own.actions.reduce((n, a) => n + Number(a.count), 0)).toBeGreaterThanOrEqual(30);
    expect(own.endTime!.getTime() - own.startTime!.getTime()).toBe(86_400_000);
    const err = await expectGrpcError(h.call('summarizeActivity', { userId: bob.userId }, { token: alice.token }));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    const bad = await expectGrpcError(h.call('summarizeActivity', { startTime: new Date(5), endTime: new Date(1) }));
    expect(decodeBadRequest(bad.metadata).map((v) => v.field)).toEqual(['end_time']);
  });
});

describe('ExportAuditLogs', () => {
  function exportAll(req: DeepPartial<audit.ExportAuditLogsRequest>, token = auditor.token): Promise<audit.ExportAuditLogsResponse[]> {
    return collect(h.client.exportAuditLogs(audit.ExportAuditLogsRequest.fromPartial(req), h.metadata(token)));
  }

  it('streams NDJSON in chain order, in chunks, with the chain fields', async () => {
    const chunks = await exportAll({ filter: { userIds: [alice.userId] }, format: audit.ExportFormat.EXPORT_FORMAT_NDJSON, rowsPerChunk: 8 });
    const lines = chunks.map((c) => Buffer.from(c.data).toString('utf8')).join('').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThanOrEqual(31);
    expect(chunks.slice(0, -1).every((c) => c.rowCount === 8 && !c.last)).toBe(true);
    expect(chunks[chunks.length - 1]).toMatchObject({ last: true, totalRows: String(lines.length) });
    const seqs = lines.map((l) => Number(l.chain_seq));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(lines[0]).toMatchObject({ user_id: alice.userId, row_hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it('streams CSV with a header and RFC 4180 quoting', async () => {
    await h.call('recordAuditEvents', { events: [{ actionType: 'csv.check', description: 'says "hi", then\nleaves' }] });
    const chunks = await exportAll({ filter: { actionTypes: ['csv.check'] }, format: audit.ExportFormat.EXPORT_FORMAT_CSV });
    const text = chunks.map((c) => Buffer.from(c.data).toString('utf8')).join('');
    expect(text.split('\r\n')[0]).toMatch(/^chain_seq,id,created_at,user_id,action_type,/);
    expect(text).toContain('"says ""hi"", then\nleaves"');
  });

  it('resumes from any chunk\'s cursor over the range fixed at its start, with no gap and no duplicate', async () => {
    const req = { filter: { userIds: [alice.userId] }, format: audit.ExportFormat.EXPORT_FORMAT_NDJSON, rowsPerChunk: 5 };
    const full = await exportAll(req);
    const text = (chunks: audit.ExportAuditLogsResponse[]) => chunks.map((c) => Buffer.from(c.data).toString('utf8')).join('');
    // A row written after the export began is outside its range, on resumption too.
    await h.call('recordAuditEvents', { events: [{ actionType: 'late.write', userId: alice.userId }] }, { token: writer.token });
    const resumed = await exportAll({ ...req, cursor: full[1].cursor });
    expect(text([full[0], full[1], ...resumed])).toBe(text(full));
    expect(resumed[resumed.length - 1]).toMatchObject({ last: true, totalRows: full[full.length - 1].totalRows });
    const err = await exportAll({ ...req, format: audit.ExportFormat.EXPORT_FORMAT_CSV, cursor: full[1].cursor }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT); // a cursor of another export
  });

  it('audits the export itself and rejects a missing format', async () => {
    const before = (await h.pg.query(`SELECT count(*)::int AS n FROM audit_logs WHERE action_type = 'audit.export'`)).rows[0].n;
    await exportAll({ format: audit.ExportFormat.EXPORT_FORMAT_NDJSON, filter: { actionTypes: ['none'] } });
    expect((await h.pg.query(`SELECT count(*)::int AS n FROM audit_logs WHERE action_type = 'audit.export'`)).rows[0].n).toBe(before + 1);
    const err = await exportAll({}).then(() => undefined, (e: grpc.ServiceError) => e);
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const denied = await exportAll({ format: audit.ExportFormat.EXPORT_FORMAT_CSV }, alice.token).then(() => undefined, (e: grpc.ServiceError) => e);
    expect(denied?.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('holds back reads while the client does not take chunks (backpressure)', async () => {
    await h.call('recordAuditEvents', { events: Array.from({ length: 50 }, () => ({ actionType: 'bulk', description: 'x'.repeat(4000) })) });
    await h.call('recordAuditEvents', { events: Array.from({ length: 50 }, () => ({ actionType: 'bulk', description: 'x'.repeat(4000) })) });
    const call = h.client.exportAuditLogs(
      audit.ExportAuditLogsRequest.fromPartial({ format: audit.ExportFormat.EXPORT_FORMAT_NDJSON, rowsPerChunk: 1 }),
      h.metadata(auditor.token),
    );
    call.pause();
    await new Promise((r) => setTimeout(r, 500));
    // Paused: the server stopped at the transport's buffer instead of reading everything.
    const received: audit.ExportAuditLogsResponse[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (m: audit.ExportAuditLogsResponse) => received.push(m));
      call.on('end', resolve);
      call.on('error', reject);
    });
    const bufferedBeforeResume = call.readableLength;
    call.resume();
    await done;
    expect(bufferedBeforeResume).toBeLessThan(received.length);
    expect(received[received.length - 1].last).toBe(true);
  });
});

describe('schema', () => {
  it('entities agree with the migrated schema (drift check)', async () => {
    const ds = createDataSource({ url: h.db.url, entities: auditEntities, poolSize: 1 });
    await ds.initialize();
    try {
      expect(await checkEntityDrift(ds)).toEqual([]);
    } finally {
      await ds.destroy();
    }
  });
});
