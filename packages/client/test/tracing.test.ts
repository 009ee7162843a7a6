import { freePort } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import { provisionPrincipal, waitForServing } from '@mcp/runtime';
import { startOtlpReceiver } from '@mcp/runtime/dist/testing';
import { execFile, spawn } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFixture } from './harness';

const PRELOAD = path.join(path.dirname(require.resolve('@mcp/runtime/package.json')), 'dist/telemetry-preload.js');
const SERVICE = path.join(path.dirname(require.resolve('@mcp/connection-log/package.json')), 'dist/main.js');
const AGENT = path.join(__dirname, 'fixtures/traced-agent.js');
const CLIENT_KIND = 3;
const SERVER_KIND = 2;

let db: TestDatabase;
let connectionId: string;
let token: string;

beforeAll(async () => {
  // The agent runs the compiled package (dist/, built by test/global-build.ts), as an application would.
  db = await freshDatabase();
  const pg = new Client({ connectionString: db.url });
  await pg.connect();
  connectionId = (await createFixture(pg, 'traced')).connectionId;
  const writer = await provisionPrincipal(pg, { username: 'traced-agent', roles: ['service'] });
  token = writer.token;
  await pg.query(
    `INSERT INTO rate_limits (scope, user_id, endpoint, requests_limit, window_seconds) VALUES ('USER_ENDPOINT', $1, $2, 1, 1)`,
    [writer.userId, '/mcp.connectionlog.v1.ConnectionLogService/ListEvents'],
  );
  await pg.end();
}, 120_000);
afterAll(async () => db?.drop());

describe('trace context', () => {
  it('a batched flush is a child of the recorder creator\'s span, linked to each record() span; retries stay in the caller\'s trace', async () => {
    const receiver = await startOtlpReceiver();
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_METRICS_EXPORTER: 'none' };
    const service = spawn(process.execPath, ['--require', PRELOAD, SERVICE], {
      env: { ...process.env, ...otel, OTEL_SERVICE_NAME: 'connection-log', DATABASE_URL: db.url, GRPC_HOST: '127.0.0.1', GRPC_PORT: String(port), LOG_LEVEL: 'error' },
      stdio: 'inherit',
    });
    const exited = new Promise<number | null>((r) => service.on('exit', r));
    let output: { retries: Array<{ code: number; serverDelayMs?: number }> };
    try {
      await waitForServing(address, 30_000);
      const { stdout } = await promisify(execFile)(process.execPath, ['--require', PRELOAD, AGENT], {
        env: { ...process.env, ...otel, OTEL_SERVICE_NAME: 'agent', MCP_CONNECTION_LOG_ADDRESS: address, MCP_API_KEY: token, CONNECTION_ID: connectionId },
      });
      output = JSON.parse(stdout);
      await new Promise((r) => setTimeout(r, 500)); // the service's span batch
    } finally {
      service.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    receiver.close();

    const spans = receiver.spans;
    const named = (name: string) => spans.find((s) => s.service === 'agent' && s.name === name)!;
    const startup = named('startup');
    const flush = named('RecordEvents flush');
    const requests = [named('request-1'), named('request-2')];
    expect(flush.traceId).toBe(startup.traceId);
    expect(flush.parentSpanId).toBe(startup.spanId);
    expect(flush.links?.map((l) => l.spanId).sort()).toEqual(requests.map((r) => r.spanId).sort());
    const recordCall = spans.find((s) => s.service === 'agent' && s.kind === CLIENT_KIND && s.name.endsWith('/RecordEvents'))!;
    expect(recordCall.parentSpanId).toBe(flush.spanId);
    const recordServer = spans.find((s) => s.service === 'connection-log' && s.kind === SERVER_KIND && s.name.endsWith('/RecordEvents'))!;
    expect(recordServer.traceId).toBe(startup.traceId);
    expect(recordServer.parentSpanId).toBe(recordCall.spanId);

    // Three ListEvents attempts (one refused, retried after the RetryInfo delay), all in the caller's span.
    expect(output!.retries.map((r) => r.code)).toEqual([8]);
    const read = named('read');
    const listCalls = spans.filter((s) => s.service === 'agent' && s.kind === CLIENT_KIND && s.name.endsWith('/ListEvents'));
    expect(listCalls).toHaveLength(3);
    expect(listCalls.every((s) => s.traceId === read.traceId && s.parentSpanId === read.spanId)).toBe(true);
  });
});
