import * as grpc from '@grpc/grpc-js';
import { freePort } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import { audit } from '@mcp/proto';
import { provisionPrincipal, waitForServing } from '@mcp/runtime';
import { startOtlpReceiver, type ReceivedSpan } from '@mcp/runtime/dist/testing';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { collect } from './harness';

// Server spans come from the gRPC instrumentation, which must patch @grpc/grpc-js
// before anything loads it: so the built service runs as a child process with the
// telemetry preload, as in production, exporting to a receiver inside the test.
const ROOT = path.resolve(__dirname, '../../..');
const PRELOAD = path.join(ROOT, 'packages/runtime/dist/telemetry-preload.js');
const SERVICE = path.join(ROOT, 'services/audit/dist/main.js');
const SERVER = 2;

let db: TestDatabase;
let token: string;
let checkpointDir: string;

beforeAll(async () => {
  db = await freshDatabase();
  checkpointDir = fs.mkdtempSync(path.join(os.tmpdir(), 'audit-tracing-'));
  const pg = new Client({ connectionString: db.url });
  await pg.connect();
  token = (await provisionPrincipal(pg, { username: 'traced-admin', roles: ['admin'] })).token;
  await pg.end();
});
afterAll(async () => {
  await db?.drop();
  if (checkpointDir) fs.rmSync(checkpointDir, { recursive: true, force: true });
});

function unary<Req, Res>(call: (req: Req, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown, req: Req, md: grpc.Metadata): Promise<Res> {
  return new Promise((resolve, reject) => call(req, md, (err, res) => (err ? reject(err) : resolve(res))));
}

function intAttribute(span: ReceivedSpan | undefined, key: string): number | undefined {
  const value = span?.attributes?.find((a) => a.key === key)?.value.intValue;
  return value === undefined ? undefined : Number(value);
}

it('batch and stream server spans carry their sizes', async () => {
  const receiver = await startOtlpReceiver();
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const service = spawn(process.execPath, ['--require', PRELOAD, SERVICE], {
    env: {
      ...process.env,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_METRICS_EXPORTER: 'none',
      OTEL_SERVICE_NAME: 'audit',
      DATABASE_URL: db.url,
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: String(port),
      LOG_LEVEL: 'error',
      AUDIT_CHECKPOINT_DIR: checkpointDir,
    },
    stdio: 'inherit',
  });
  const exited = new Promise<number | null>((r) => service.on('exit', r));
  const client = new audit.AuditServiceClient(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  let exportedChunks: audit.ExportAuditLogsResponse[] = [];
  try {
    await waitForServing(address);
    const at = new Date();
    const events = Array.from({ length: 3 }, () => ({ id: crypto.randomUUID(), createdAt: at, actionType: 'traced.write' }));
    await unary(client.recordAuditEvents.bind(client), audit.RecordAuditEventsRequest.fromPartial({ events: events.slice(0, 2) }), md);
    // A retry of two events and one new one: a batch of 3 that stores 1.
    await unary(client.recordAuditEvents.bind(client), audit.RecordAuditEventsRequest.fromPartial({ events }), md);
    const securityEvents = [1, 2].map(() => ({ eventType: 'port_scan', severity: audit.Severity.SEVERITY_LOW }));
    await unary(client.recordSecurityEvents.bind(client), audit.RecordSecurityEventsRequest.fromPartial({ events: securityEvents }), md);
    exportedChunks = await collect(
      client.exportAuditLogs(
        audit.ExportAuditLogsRequest.fromPartial({ filter: { actionTypes: ['traced.write'] }, format: audit.ExportFormat.EXPORT_FORMAT_NDJSON, rowsPerChunk: 2 }),
        md,
      ),
    );
    await new Promise((r) => setTimeout(r, 500)); // a span batch
  } finally {
    client.close();
    service.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
  receiver.close();

  const serverSpans = (method: string) => receiver.spans.filter((s) => s.service === 'audit' && s.kind === SERVER && s.name.endsWith(`AuditService/${method}`));
  const auditBatches = serverSpans('RecordAuditEvents');
  expect(auditBatches.map((s) => [intAttribute(s, 'mcp.batch.size'), intAttribute(s, 'mcp.batch.stored')]), JSON.stringify(receiver.spans.map((s) => s.name))).toEqual(
    expect.arrayContaining([
      [2, 2],
      [3, 1],
    ]),
  );
  expect(auditBatches).toHaveLength(2);
  const [securityBatch] = serverSpans('RecordSecurityEvents');
  expect([intAttribute(securityBatch, 'mcp.batch.size'), intAttribute(securityBatch, 'mcp.batch.stored')]).toEqual([2, 2]);
  const [exportStream] = serverSpans('ExportAuditLogs');
  expect(exportedChunks.map((c) => c.rowCount)).toEqual([2, 1]);
  expect([intAttribute(exportStream, 'mcp.stream.rows'), intAttribute(exportStream, 'mcp.stream.chunks')]).toEqual([3, 2]);
});
