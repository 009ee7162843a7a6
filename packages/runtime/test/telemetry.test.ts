import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { telemetryDisabled } from '../src/telemetry';

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
