import { freePort } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import { checkHealth, provisionPrincipal, waitForServing } from '@mcp/runtime';
import { startOtlpReceiver, type ReceivedSpan } from '@mcp/runtime/dist/testing';
import { execFile, spawn } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../../..');
const PRELOAD = path.join(ROOT, 'packages/runtime/dist/telemetry-preload.js');
const SERVICE = path.join(ROOT, 'services/connection-log/dist/main.js');
const MCPCTL = path.join(ROOT, 'packages/cli/dist/mcpctl.js');

const SERVER = 2;
const CLIENT = 3;

let db: TestDatabase;
let connectionId: string;
let token: string;

beforeAll(async () => {
  db = await freshDatabase();
  const pg = new Client({ connectionString: db.url });
  await pg.connect();
  const { rows } = await pg.query(
    `WITH u AS (INSERT INTO users (username, email) VALUES ('traced', 'traced@example.test') RETURNING id),
          a AS (INSERT INTO agents (user_id, name) SELECT id, 'traced-agent' FROM u RETURNING id, user_id),
          s AS (INSERT INTO mcp_servers (name, owner_id) SELECT 'traced-server', user_id FROM a RETURNING id)
     INSERT INTO agent_mcp_connections (agent_id, mcp_server_instance_id) SELECT a.id, s.id FROM a, s RETURNING id`,
  );
  connectionId = rows[0].id;
  token = (await provisionPrincipal(pg, { username: 'traced-writer', roles: ['service'] })).token;
  await pg.end();
});
afterAll(async () => db?.drop());

describe('tracing', () => {
  it('one trace from the CLI through the service to SQL, with health checks untraced and metrics exported', async () => {
    const receiver = await startOtlpReceiver();
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_METRIC_EXPORT_INTERVAL: '300' };
    const service = spawn(process.execPath, ['--require', PRELOAD, SERVICE], {
      env: { ...process.env, ...otel, OTEL_SERVICE_NAME: 'connection-log', DATABASE_URL: db.url, GRPC_HOST: '127.0.0.1', GRPC_PORT: String(port), LOG_LEVEL: 'warn' },
      stdio: 'inherit',
    });
    const exited = new Promise<number | null>((r) => service.on('exit', r));
    try {
      await waitForServing(address);
      expect(await checkHealth(address)).toBe('SERVING');
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--require', PRELOAD, MCPCTL, 'events', 'record', '--connection-id', connectionId, '--type', 'connected', '--address', address, '--json'],
        { env: { ...process.env, ...otel, OTEL_SERVICE_NAME: 'mcpctl', MCP_API_KEY: token } },
      );
      expect(stdout).toContain('storedCount');
      await new Promise((r) => setTimeout(r, 800)); // one metric export interval and a span batch
    } finally {
      service.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    receiver.close();

    const clientSpan = receiver.spans.find((s) => s.service === 'mcpctl' && s.kind === CLIENT && s.name.endsWith('ConnectionLogService/RecordEvents'));
    expect(clientSpan, JSON.stringify(receiver.spans.map((s) => [s.service, s.name, s.kind]))).toBeDefined();
    const serverSpan = receiver.spans.find((s) => s.service === 'connection-log' && s.kind === SERVER && s.name.endsWith('ConnectionLogService/RecordEvents'));
    expect(serverSpan).toBeDefined();
    expect(serverSpan!.traceId).toBe(clientSpan!.traceId);
    expect(serverSpan!.parentSpanId).toBe(clientSpan!.spanId);
    const batchSize = serverSpan!.attributes?.find((a) => a.key === 'mcp.batch.size')?.value.intValue;
    expect(Number(batchSize)).toBe(1);

    // SQL spans hang below the server span, directly or through other spans of the same trace.
    const byId = new Map(receiver.spans.map((s) => [s.spanId, s]));
    const underServer = (s: ReceivedSpan): boolean => {
      for (let p = s.parentSpanId; p; p = byId.get(p)?.parentSpanId) if (p === serverSpan!.spanId) return true;
      return false;
    };
    const sqlSpans = receiver.spans.filter((s) => s.traceId === clientSpan!.traceId && s.service === 'connection-log' && s.kind === CLIENT && /^pg\./.test(s.name));
    expect(sqlSpans.length).toBeGreaterThan(0);
    expect(sqlSpans.some((s) => s.attributes?.some((a) => /^(COPY|INSERT INTO) agent_mcp_connection_logs/.test(a.value.stringValue ?? '')))).toBe(true);
    expect(sqlSpans.every(underServer)).toBe(true);

    expect(receiver.spans.filter((s) => /Health|Check|Reflection/.test(s.name))).toEqual([]);
    expect([...receiver.metricNames]).toEqual(expect.arrayContaining(['rpc.server.duration', 'mcp.rows.ingested']));
  });
});
