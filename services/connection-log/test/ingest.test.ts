import * as grpc from '@grpc/grpc-js';
import { connectionlog } from '@mcp/proto';
import { decodeBadRequest } from '@mcp/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countLogs, createFixture, expectGrpcError, startHarness, type Fixture, type Harness } from './harness';

const { EventType } = connectionlog;
let h: Harness;
let fx: Fixture;

beforeAll(async () => {
  h = await startHarness({ maxBatchSize: 50 });
  fx = await createFixture(h, 'ingest');
});
afterAll(async () => h?.close());

function event(overrides: Partial<connectionlog.ConnectionEvent> = {}): Partial<connectionlog.ConnectionEvent> {
  return { connectionId: fx.connectionId, eventType: EventType.EVENT_TYPE_CONNECTED, ...overrides };
}

describe('RecordEvents', () => {
  it('stores every field of the seed table and reads it back exactly', async () => {
    const at = new Date(Date.now() - 60_000);
    const full = event({
      id: crypto.randomUUID(),
      eventType: EventType.EVENT_TYPE_STATUS_CHANGE,
      eventDetails: 'status moved',
      oldStatus: 'connecting',
      newStatus: 'connected',
      requestData: JSON.stringify({ method: 'tools/list', params: [1, 2] }),
      responseData: JSON.stringify(['a', { b: null }]),
      errorData: JSON.stringify(42),
      latencyMs: 17,
      bytesTransferred: '9007199254740993',
      timestamp: at,
      createdBy: fx.userId,
      userAgent: 'agent/1.0',
      ipAddress: '2001:db8::1',
      sessionId: 'session-1',
    });
    const res = await h.call('recordEvents', { events: [full] });
    expect(res).toMatchObject({ storedCount: 1, duplicateCount: 0 });
    expect(res.acks[0]).toEqual({ id: full.id, timestamp: at, alreadyStored: false });

    const { events } = await h.call('listEvents', { filter: { connectionIds: [fx.connectionId] }, pageSize: 1000 });
    const back = events.find((e) => e.id === full.id)!;
    const jsonFields = ['requestData', 'responseData', 'errorData'] as const;
    for (const k of jsonFields) expect(JSON.parse(back[k]!)).toEqual(JSON.parse(full[k]!));
    const withoutJson = (e: Partial<connectionlog.ConnectionEvent>) => ({ ...e, requestData: 0, responseData: 0, errorData: 0 });
    expect(withoutJson(back)).toEqual(withoutJson({ ...full, agentId: fx.agentId }));
  });

  it('keeps each JSON payload with its own event, and a JSON null apart from an absent payload', async () => {
    const events = [
      event({ id: crypto.randomUUID(), timestamp: new Date(), requestData: 'null', responseData: '{"n":1}' }),
      event({ id: crypto.randomUUID(), timestamp: new Date() }),
      event({ id: crypto.randomUUID(), timestamp: new Date(), errorData: '"only the error"' }),
      event({ id: crypto.randomUUID(), timestamp: new Date(), requestData: '[ 1, {"q": "s"} ]', responseData: '{"e":{}}', errorData: '0' }),
    ];
    expect((await h.call('recordEvents', { events })).storedCount).toBe(4);
    const { rows } = await h.pg.query(
      `SELECT id, request_data IS NULL AS req_absent, request_data::text AS req, response_data::text AS res, error_data::text AS err
         FROM agent_mcp_connection_logs WHERE id = ANY($1::uuid[])`,
      [events.map((e) => e.id)],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(events.map((e) => { const r = byId.get(e.id)!; return [r.req_absent, r.req, r.res, r.err]; })).toEqual([
      [false, 'null', '{"n": 1}', null],
      [true, null, null, null],
      [true, null, null, '"only the error"'],
      [false, '[1, {"q": "s"}]', '{"e": {}}', '0'],
    ]);
  });

  it('assigns time-ordered ids and the receipt time when the client does not', async () => {
    const before = Date.now();
    const res = await h.call('recordEvents', { events: [event(), event()] });
    expect(res.storedCount).toBe(2);
    for (const ack of res.acks) {
      expect(ack.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(ack.timestamp!.getTime()).toBeGreaterThanOrEqual(before);
    }
  });

  it('stores a retried batch once and says which events were already stored', async () => {
    const at = new Date();
    const batch = [event({ id: crypto.randomUUID(), timestamp: at }), event({ id: crypto.randomUUID(), timestamp: at })];
    const before = await countLogs(h);
    const first = await h.call('recordEvents', { events: batch });
    expect(first).toMatchObject({ storedCount: 2, duplicateCount: 0 });
    const partlyNew = [...batch, event({ id: crypto.randomUUID(), timestamp: at })];
    const retry = await h.call('recordEvents', { events: partlyNew });
    expect(retry).toMatchObject({ storedCount: 1, duplicateCount: 2 });
    expect(retry.acks.map((a) => a.alreadyStored)).toEqual([true, true, false]);
    expect(await countLogs(h)).toBe(before + 3);
  });

  it('stores a batch sent twice at once exactly once, and each caller is told the truth', async () => {
    const at = new Date();
    const batch = Array.from({ length: 50 }, () => event({ id: crypto.randomUUID(), timestamp: at }));
    const before = await countLogs(h);
    const results = await Promise.all([1, 2, 3].map(() => h.call('recordEvents', { events: batch })));
    expect(results.map((r) => r.storedCount).reduce((a, b) => a + b)).toBe(50);
    for (const r of results) {
      expect(r.storedCount + r.duplicateCount).toBe(50);
      expect(r.acks.filter((a) => !a.alreadyStored)).toHaveLength(r.storedCount);
    }
    expect(await countLogs(h)).toBe(before + 50);
  });

  it('masks secrets in JSON and free text before they reach the table', async () => {
    const { acks } = await h.call('recordEvents', {
      events: [
        event({
          eventDetails: 'retrying with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl',
          requestData: JSON.stringify({ headers: { Authorization: 'Bearer abc123', Cookie: 'sid=1' }, body: { password: 'hunter2', query: 'ok' } }),
          errorData: JSON.stringify({ message: 'connect postgres://svc:s3cret@db:5432/x failed', api_key: 'sk-live-1234567890abcdef' }),
        }),
      ],
    });
    const { rows } = await h.pg.query(
      'SELECT event_details, request_data::text AS req, error_data::text AS err FROM agent_mcp_connection_logs WHERE id = $1',
      [acks[0].id],
    );
    const stored = JSON.stringify(rows[0]);
    for (const secret of ['abc123', 'sid=1', 'hunter2', 's3cret', 'sk-live-1234567890abcdef', 'c2lnbmF0dXJl']) {
      expect(stored).not.toContain(secret);
    }
    expect(JSON.parse(rows[0].req).body.query).toBe('ok');
    expect(stored).toContain('[REDACTED]');
  });

  it('stores SQL-looking, shell-looking and COPY-format-looking strings literally', async () => {
    const nasty = `'); DROP TABLE agent_mcp_connection_logs; -- $(rm -rf /) \`id\` "quoted" \\ back`;
    // What the COPY text format gives meaning to: tabs, line ends, backslash escapes, \N (NULL) and \. (end of data).
    const copyLike = 'tab\tnew\nline\r\nend \\N \\. \\t \\\\ \N';
    const json = JSON.stringify({ path: 'C:\\temp\\n', text: 'a\tb\nc', marker: '\\.' });
    const { acks } = await h.call('recordEvents', {
      events: [event({ eventDetails: nasty, sessionId: "' OR 1=1 --", userAgent: copyLike, requestData: json })],
    });
    const { rows } = await h.pg.query(
      'SELECT event_details, session_id, user_agent, request_data FROM agent_mcp_connection_logs WHERE id = $1',
      [acks[0].id],
    );
    expect(rows[0]).toEqual({ event_details: nasty, session_id: "' OR 1=1 --", user_agent: copyLike, request_data: JSON.parse(json) });
  });
});

describe('RecordEvents rejects bad input precisely and writes nothing', () => {
  const now = Date.now();
  const cases: Array<[string, () => Partial<connectionlog.ConnectionEvent>[], string, grpc.status?]> = [
    ['empty batch', () => [], 'events'],
    ['batch over the limit', () => Array.from({ length: 51 }, () => event()), 'events'],
    ['bad connection UUID', () => [event({ connectionId: 'not-a-uuid' })], 'events[0].connection_id'],
    ['missing connection', () => [event({ connectionId: '' })], 'events[0].connection_id'],
    ['unknown enum value', () => [event({ eventType: 42 as connectionlog.EventType })], 'events[0].event_type'],
    ['unspecified enum', () => [event({ eventType: EventType.EVENT_TYPE_UNSPECIFIED })], 'events[0].event_type'],
    ['bad event id', () => [event({ id: 'x', timestamp: new Date() })], 'events[0].id'],
    ['id without timestamp', () => [event({ id: crypto.randomUUID() })], 'events[0].timestamp'],
    ['oversized text', () => [event({ eventDetails: 'x'.repeat(10_001) })], 'events[0].event_details'],
    ['oversized JSON', () => [event({ requestData: JSON.stringify({ blob: 'x'.repeat(70_000) }) })], 'events[0].request_data'],
    ['malformed JSON', () => [event({ responseData: '{"unterminated": ' })], 'events[0].response_data'],
    ['deeply nested JSON', () => [event({ errorData: '['.repeat(100) + ']'.repeat(100) })], 'events[0].error_data'],
    ['NUL in text', () => [event({ eventDetails: 'a\u0000b' })], 'events[0].event_details'],
    ['NUL in JSON', () => [event({ requestData: JSON.stringify({ k: 'a\u0000b' }) })], 'events[0].request_data'],
    ['negative latency', () => [event({ latencyMs: -1 })], 'events[0].latency_ms'],
    ['negative bytes', () => [event({ bytesTransferred: '-5' })], 'events[0].bytes_transferred'],
    ['bad IP address', () => [event({ ipAddress: '999.1.1.1' })], 'events[0].ip_address'],
    ['timestamp far in the past', () => [event({ timestamp: new Date(now - 400 * 86_400_000) })], 'events[0].timestamp'],
    ['timestamp far in the future', () => [event({ timestamp: new Date(now + 86_400_000) })], 'events[0].timestamp'],
    ['bad created_by', () => [event({ createdBy: 'admin' })], 'events[0].created_by'],
    ['one bad event among good ones', () => [event(), event(), event({ latencyMs: -3 })], 'events[2].latency_ms'],
  ];

  it.each(cases)('%s', async (_name, events, field) => {
    const before = await countLogs(h);
    const err = await expectGrpcError(h.call('recordEvents', { events: events() }));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(decodeBadRequest(err.metadata).map((v) => v.field)).toContain(field);
    expect(err.details).toContain(field);
    expect(await countLogs(h)).toBe(before);
  });

  it('reports every problem of a batch, with its index', async () => {
    const err = await expectGrpcError(
      h.call('recordEvents', { events: [event({ connectionId: 'a' }), event(), event({ latencyMs: -1, ipAddress: 'x' })] }),
    );
    expect(decodeBadRequest(err.metadata).map((v) => v.field)).toEqual([
      'events[0].connection_id',
      'events[2].latency_ms',
      'events[2].ip_address',
    ]);
  });

  it('refuses unknown connections and creators with FAILED_PRECONDITION naming each event', async () => {
    const before = await countLogs(h);
    const unknown = crypto.randomUUID();
    const err = await expectGrpcError(
      h.call('recordEvents', { events: [event(), event({ connectionId: unknown }), event({ createdBy: crypto.randomUUID() })] }),
    );
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toContain(`events[1].connection_id: unknown connection ${unknown}`);
    expect(err.details).toContain('events[2].created_by: unknown user');
    expect(await countLogs(h)).toBe(before);
  });
});

describe('StreamEvents', () => {
  it('commits and acknowledges each batch in order', async () => {
    const before = await countLogs(h);
    const call = h.client.streamEvents(h.metadata());
    const acks: connectionlog.StreamEventsResponse[] = [];
    call.on('data', (m: connectionlog.StreamEventsResponse) => acks.push(m));
    const done = new Promise<void>((resolve, reject) => {
      call.on('end', resolve);
      call.on('error', reject);
    });
    for (let seq = 1; seq <= 20; seq++) {
      call.write(connectionlog.StreamEventsRequest.fromPartial({ sequence: String(seq), events: Array.from({ length: 25 }, () => event()) }));
    }
    call.end();
    await done;
    expect(acks.map((a) => a.sequence)).toEqual(Array.from({ length: 20 }, (_, i) => String(i + 1)));
    expect(acks.every((a) => a.storedCount === 25 && a.acks.length === 25)).toBe(true);
    expect(await countLogs(h)).toBe(before + 500);
  });

  it('ends with the failing batch named; batches before it stay committed', async () => {
    const before = await countLogs(h);
    const call = h.client.streamEvents(h.metadata());
    const acks: connectionlog.StreamEventsResponse[] = [];
    call.on('data', (m: connectionlog.StreamEventsResponse) => acks.push(m));
    const failed = new Promise<grpc.ServiceError>((resolve) => call.on('error', (e) => resolve(e as grpc.ServiceError)));
    call.write(connectionlog.StreamEventsRequest.fromPartial({ sequence: '1', events: [event()] }));
    call.write(connectionlog.StreamEventsRequest.fromPartial({ sequence: '2', events: [event({ connectionId: 'bad' })] }));
    call.end();
    const err = await failed;
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toContain('batch sequence 2');
    expect(acks.map((a) => a.sequence)).toEqual(['1']);
    expect(await countLogs(h)).toBe(before + 1);
  });
});
