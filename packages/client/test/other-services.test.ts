/**
 * The recorders and streams of status-sync and audit, against in-process
 * stand-ins of those services (their real implementations are built
 * elsewhere): what is sent, how often, with which keys.
 */
import * as grpc from '@grpc/grpc-js';
import { audit, statussync } from '@mcp/proto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AuditEventRecorder,
  createAuditClient,
  createStatusSyncClient,
  HeartbeatRecorder,
  RecorderError,
  StatusReportRecorder,
  uuidv7,
} from '../src';

const servers: grpc.Server[] = [];
afterEach(() => servers.splice(0).forEach((s) => s.forceShutdown()));

async function serve(definition: grpc.ServiceDefinition, implementation: object): Promise<string> {
  const server = new grpc.Server();
  server.addService(definition, implementation as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  servers.push(server);
  return `127.0.0.1:${port}`;
}

const unavailable = (): grpc.ServiceError => Object.assign(new Error('lost'), { code: grpc.status.UNAVAILABLE, details: 'lost', metadata: new grpc.Metadata() });
const options = { credentials: 'insecure' as const, apiKey: 'mcp_test_key', retry: { initialBackoffMs: 10, maxBackoffMs: 20 } };
const fast = { retry: { initialBackoffMs: 10, maxBackoffMs: 20 } };

describe('AuditEventRecorder', () => {
  it('assigns ids, created_at and the trace id once, and a re-sent batch is stored once', async () => {
    const stored = new Map<string, audit.AuditEvent>();
    let calls = 0;
    const authorizations: string[] = [];
    const address = await serve(audit.AuditServiceService, {
      recordAuditEvents: (call: grpc.ServerUnaryCall<audit.RecordAuditEventsRequest, audit.RecordAuditEventsResponse>, cb: grpc.sendUnaryData<audit.RecordAuditEventsResponse>) => {
        calls += 1;
        authorizations.push(String(call.metadata.get('authorization')[0]));
        const acks = call.request.events.map((e) => {
          const key = `${e.id}@${e.createdAt?.getTime()}`;
          const alreadyStored = stored.has(key);
          stored.set(key, e);
          return { id: e.id, createdAt: e.createdAt, alreadyStored, chainSequence: '0' };
        });
        // The first answer is lost after the commit.
        if (calls === 1) return cb(unavailable());
        cb(null, { acks, storedCount: acks.filter((a) => !a.alreadyStored).length, duplicateCount: acks.filter((a) => a.alreadyStored).length });
      },
    });
    const client = createAuditClient({ ...options, address });
    const recorder = new AuditEventRecorder(client, { ...fast, maxBatchSize: 10 });
    for (let i = 0; i < 5; i++) await recorder.record({ actionType: 'tool.call', description: `call ${i}` });
    const stats = await recorder.close();
    client.close();
    expect(stats).toMatchObject({ recorded: 5, delivered: 5, duplicates: 5, retries: 1, batches: 1 });
    expect(calls).toBe(2);
    expect(stored.size).toBe(5);
    expect([...stored.values()].every((e) => /^[0-9a-f-]{36}$/.test(e.id) && e.createdAt instanceof Date)).toBe(true);
    expect(authorizations).toEqual(['Bearer mcp_test_key', 'Bearer mcp_test_key']);
  });
});

describe('StatusReportRecorder', () => {
  it('sends at most one report per server per ReportStatusBatch, in order, each batch id stable across re-sends', async () => {
    const batches = new Map<string, statussync.StatusReport[]>();
    const calls: string[] = [];
    const address = await serve(statussync.StatusSyncServiceService, {
      reportStatusBatch: (
        call: grpc.ServerUnaryCall<statussync.ReportStatusBatchRequest, statussync.ReportStatusBatchResponse>,
        cb: grpc.sendUnaryData<statussync.ReportStatusBatchResponse>,
      ) => {
        const { batchId, reports } = call.request;
        calls.push(batchId);
        const servers = reports.map((r) => r.serverId);
        if (new Set(servers).size !== servers.length) return cb({ code: grpc.status.INVALID_ARGUMENT, details: 'one report per server' });
        const already = batches.has(batchId);
        if (!already) batches.set(batchId, reports);
        if (calls.length === 1) return cb(unavailable()); // the first answer is lost
        cb(null, { entries: [], alreadyRecorded: already });
      },
    });
    const client = createStatusSyncClient({ ...options, address });
    const recorder = new StatusReportRecorder(client, { ...fast, syncSessionId: 'sync-1' });
    const [s1, s2, s3] = [uuidv7(), uuidv7(), uuidv7()];
    const sequence = [s1, s2, s1, s3, s1];
    for (const [i, serverId] of sequence.entries()) await recorder.record({ serverId, currentStatus: JSON.stringify({ state: 'running', n: i }) });
    const stats = await recorder.close();
    client.close();
    expect(stats).toMatchObject({ recorded: 5, delivered: 5, retries: 1, batches: 3 });
    expect(calls[0]).toBe(calls[1]); // the re-send kept its batch id
    const stored = [...batches.values()];
    expect(stored.map((b) => b.map((r) => r.serverId))).toEqual([[s1, s2, s3], [s1], [s1]]);
    expect(stored.flat().filter((r) => r.serverId === s1).map((r) => JSON.parse(r.currentStatus).n)).toEqual([0, 2, 4]);
  });
});

describe('HeartbeatRecorder', () => {
  const { SERVER_STATE_RUNNING: RUNNING, SERVER_STATE_ERROR: ERROR } = statussync.ServerState;

  /** A stand-in HeartbeatBatch that knows some servers, and the calls it got. */
  async function heartbeatService(known: string[]): Promise<{ address: string; calls: statussync.HeartbeatRequest[][] }> {
    const calls: statussync.HeartbeatRequest[][] = [];
    const address = await serve(statussync.StatusSyncServiceService, {
      heartbeatBatch: (
        call: grpc.ServerUnaryCall<statussync.HeartbeatBatchRequest, statussync.HeartbeatBatchResponse>,
        cb: grpc.sendUnaryData<statussync.HeartbeatBatchResponse>,
      ) => {
        const { heartbeats } = call.request;
        calls.push(heartbeats);
        const servers = heartbeats.map((h) => h.serverId);
        if (new Set(servers).size !== servers.length) return cb({ code: grpc.status.INVALID_ARGUMENT, details: 'one heartbeat per server' });
        cb(null, {
          results: heartbeats.map(() => statussync.HeartbeatResponse.fromPartial({})),
          unknownServerIndexes: servers.flatMap((s, i) => (known.includes(s) ? [] : [i])),
        });
      },
    });
    return { address, calls };
  }

  it('sends many servers per HeartbeatBatch, coalescing repeated beats of one state and keeping every change in order', async () => {
    const { address, calls } = await heartbeatService(['a', 'b']);
    const client = createStatusSyncClient({ ...options, address });
    const recorder = new HeartbeatRecorder(client, fast);
    const beats = [
      { serverId: 'a', state: RUNNING, cpuUsage: 1 },
      { serverId: 'a', state: RUNNING, cpuUsage: 2 },
      { serverId: 'a', state: RUNNING, cpuUsage: 3 },
      { serverId: 'a', state: ERROR, cpuUsage: 4 },
      { serverId: 'b', state: RUNNING, cpuUsage: 5 },
      { serverId: 'a', state: ERROR, cpuUsage: 6 },
    ];
    for (const b of beats) await recorder.record(b);
    const stats = await recorder.close();
    client.close();
    expect(stats).toMatchObject({ recorded: 6, delivered: 6, rejected: 0, batches: 2 });
    expect(calls.map((c) => c.map((h) => [h.serverId, h.state, h.cpuUsage]))).toEqual([
      [
        ['a', RUNNING, 3],
        ['b', RUNNING, 5],
      ],
      [['a', ERROR, 6]],
    ]);
  });

  it('rejects the beats of servers the service does not know, and delivers the rest of the call', async () => {
    const { address, calls } = await heartbeatService(['a']);
    const client = createStatusSyncClient({ ...options, address });
    const errors: RecorderError[] = [];
    const recorder = new HeartbeatRecorder(client, { ...fast, onError: (e) => errors.push(e) });
    for (const serverId of ['a', 'ghost', 'ghost', 'a']) await recorder.record({ serverId, state: RUNNING });
    const stats = await recorder.close();
    client.close();
    expect(stats).toMatchObject({ recorded: 4, delivered: 2, rejected: 2, batches: 1 });
    expect(calls).toHaveLength(1);
    expect(errors).toHaveLength(1);
    expect(errors[0].kind).toBe('rejected');
    expect((errors[0].items as statussync.HeartbeatRequest[]).map((h) => h.serverId)).toEqual(['ghost', 'ghost']);
    expect(errors[0].message).toContain('no such server: ghost');
  });
});

describe('StatusSyncClient.watch', () => {
  it('reconnects from the last cursor when the stream breaks: no gap, no duplicate', async () => {
    const rows = Array.from({ length: 12 }, (_, i) => statussync.StatusLogEntry.fromPartial({ id: `row-${i}`, serverId: 's' }));
    const cursors: string[] = [];
    const address = await serve(statussync.StatusSyncServiceService, {
      watchServerStatus: (call: grpc.ServerWritableStream<statussync.WatchServerStatusRequest, statussync.WatchServerStatusResponse>) => {
        cursors.push(call.request.cursor);
        const from = call.request.cursor ? Number(call.request.cursor) + 1 : 0;
        // Each connection delivers at most 5 rows, then breaks.
        rows.slice(from, from + 5).forEach((entry, i) => call.write({ entry, cursor: String(from + i) }));
        if (from + 5 < rows.length) call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'restarting' });
      },
    });
    const client = createStatusSyncClient({ ...options, address });
    const watch = client.watch({ serverId: 's' });
    const got: string[] = [];
    for await (const entry of watch) {
      got.push(entry.id);
      if (got.length === rows.length) break;
    }
    client.close();
    expect(got).toEqual(rows.map((r) => r.id));
    expect(cursors).toEqual(['', '4', '9']);
    expect(watch.cursor).toBe('11');
    expect(watch.reconnects).toBe(2);
  });
});

describe('AuditClient.exportAuditLogs', () => {
  it('yields the chunks in order and, when the stream breaks, resumes from the last chunk\'s cursor', async () => {
    const opened: string[] = [];
    const address = await serve(audit.AuditServiceService, {
      exportAuditLogs: (call: grpc.ServerWritableStream<audit.ExportAuditLogsRequest, audit.ExportAuditLogsResponse>) => {
        opened.push(call.request.cursor);
        const from = call.request.cursor ? Number(call.request.cursor) + 1 : 0;
        for (let i = from; i < 3; i++) {
          call.write({ data: Buffer.from(`{"n":${i}}\n`), rowCount: 1, totalRows: i === 2 ? '3' : '0', last: i === 2, cursor: String(i) });
          // The first stream breaks after its first chunk, as a restarting server would.
          if (opened.length === 1) return void call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'restarting' });
        }
        call.end();
      },
    });
    const client = createAuditClient({ ...options, address });
    let text = '';
    const chunks = client.exportAuditLogs({ format: audit.ExportFormat.EXPORT_FORMAT_NDJSON });
    for await (const chunk of chunks) text += chunk.data.toString();
    client.close();
    expect(text).toBe('{"n":0}\n{"n":1}\n{"n":2}\n');
    expect(opened).toEqual(['', '0']);
    expect(chunks.reconnects).toBe(1);
  });
});
