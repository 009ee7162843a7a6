import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { metrics } from '@opentelemetry/api';
import type { Histogram } from '@opentelemetry/sdk-metrics';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCallHandlers } from '../src/calls';
import { NotFoundError } from '../src/errors';
import { telemetryDisabled } from '../src/telemetry';
import { captureMetrics } from '../src/testing';
import { admitAll, callUnary, captureLogs, collect, openStream, serveEcho, sleep, type EchoServer } from './support';

const PRELOAD = path.resolve(__dirname, '..', 'dist', 'telemetry-preload.js');
const FIXTURE = path.resolve(__dirname, 'fixtures', 'traced-service.js');

interface ExportedSpan {
  name: string;
  kind: number;
  traceId: string;
}

/**
 * Runs the fixture service with the preload and a local OTLP/HTTP collector;
 * returns the spans it exported and its log lines.
 */
async function runTracedService(env: NodeJS.ProcessEnv): Promise<{ spans: ExportedSpan[]; logs: Array<Record<string, unknown>> }> {
  const spans: ExportedSpan[] = [];
  const collector = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const payload = JSON.parse(body) as {
        resourceSpans?: Array<{ scopeSpans: Array<{ spans: ExportedSpan[] }> }>;
      };
      // Metric exports arrive here too (no resourceSpans).
      for (const resource of payload.resourceSpans ?? []) for (const scope of resource.scopeSpans) spans.push(...scope.spans);
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const { port } = collector.address() as AddressInfo;
  try {
    const child = spawn(process.execPath, ['--require', PRELOAD, FIXTURE], {
      env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_SERVICE_NAME: 'traced-service', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    const logs = stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    return { spans, logs };
  } finally {
    await new Promise((resolve) => collector.close(resolve));
  }
}

describe('telemetry', () => {
  beforeAll(() => {
    // The preload is loaded by plain node, so it runs from the build (turbo builds before testing).
    if (!fs.existsSync(PRELOAD)) throw new Error(`${PRELOAD} is missing: npm run build -w @mcp/runtime`);
  });

  it.each([
    [{}, false],
    [{ OTEL_SDK_DISABLED: 'true' }, true],
    [{ OTEL_SDK_DISABLED: 'TRUE ' }, true],
    [{ OTEL_SDK_DISABLED: 'false' }, false],
    [{ OTEL_TRACES_EXPORTER: 'none' }, true],
    [{ OTEL_TRACES_EXPORTER: 'otlp' }, false],
  ])('telemetryDisabled(%j) is %s', (env, disabled) => {
    expect(telemetryDisabled(env)).toBe(disabled);
  });

  it('the preload traces calls, not health checks, and logs carry the trace id', async () => {
    const { spans, logs } = await runTracedService({});
    const names = spans.map((s) => s.name);
    expect(names).toContain('grpc.mcp.connectionlog.v1.ConnectionLogService/UpsertAgent');
    expect(names.some((n) => n.includes('grpc.health.v1.Health'))).toBe(false);

    const SERVER = 2; // OTLP SPAN_KIND_SERVER
    const serverSpan = spans.find((s) => s.kind === SERVER && s.name.endsWith('/UpsertAgent'));
    expect(serverSpan).toBeDefined();
    expect(logs.find((l) => l.msg === 'handling')?.trace_id).toBe(serverSpan?.traceId);
  });

  it('OTEL_SDK_DISABLED=true exports nothing', async () => {
    const { spans, logs } = await runTracedService({ OTEL_SDK_DISABLED: 'true' });
    expect(logs.some((l) => l.msg === 'handling')).toBe(true);
    expect(spans).toEqual([]);
  });
});

describe('rpc.server.duration', () => {
  let echo: EchoServer | undefined;
  afterEach(async () => {
    await echo?.close();
    echo = undefined;
    metrics.disable();
  });

  it('counts and times every call by method and status code', async () => {
    // Before the first call: platformMetrics creates its instruments on first use.
    const reader = captureMetrics();
    const handlers = createCallHandlers({ logger: captureLogs().logger, guard: admitAll });
    echo = await serveEcho({
      call: handlers.unary('status:read', async (req: { id: string }) => {
        if (req.id === 'missing') {
          await sleep(30); // a failing call still has its latency recorded
          throw new NotFoundError('no such thing');
        }
        return { id: req.id };
      }),
      stream: handlers.serverStreaming('status:read', async (req: { count: number }, stream) => {
        for (let i = 0; i < req.count; i++) await stream.write({ i });
      }),
    });

    expect((await callUnary(echo.client, { id: 'a' })).ok).toBe(true);
    expect((await callUnary(echo.client, { id: 'b' })).ok).toBe(true);
    const failed = await callUnary(echo.client, { id: 'missing' });
    expect(failed.ok === false && failed.error.code).toBe(grpc.status.NOT_FOUND);
    expect((await collect(openStream(echo.client, { count: 3 }))).status?.code).toBe(grpc.status.OK);

    const { resourceMetrics } = await reader.collect();
    const duration = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === 'rpc.server.duration');
    expect(duration?.descriptor.unit).toBe('ms');
    const points = (duration?.dataPoints ?? []).map((p) => {
      const { count, sum } = p.value as Histogram;
      return { attributes: p.attributes, count, sum };
    });
    expect(points.map(({ attributes, count }) => ({ attributes, count }))).toEqual(
      expect.arrayContaining([
        { attributes: { 'rpc.method': '/test.Echo/Call', 'rpc.grpc.status_code': 'OK' }, count: 2 },
        { attributes: { 'rpc.method': '/test.Echo/Call', 'rpc.grpc.status_code': 'NOT_FOUND' }, count: 1 },
        { attributes: { 'rpc.method': '/test.Echo/Stream', 'rpc.grpc.status_code': 'OK' }, count: 1 },
      ]),
    );
    expect(points).toHaveLength(3);
    const notFound = points.find((p) => p.attributes['rpc.grpc.status_code'] === 'NOT_FOUND');
    expect(notFound?.sum).toBeGreaterThanOrEqual(29);
  });
});
