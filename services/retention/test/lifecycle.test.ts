import { freePort } from '@mcp/db';
import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import { provisionPrincipal, waitForServing } from '@mcp/runtime';
import { startOtlpReceiver } from '@mcp/runtime/dist/testing';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { count, createFixture, utcDay, type Fixture } from './harness';

const MAIN = path.resolve(__dirname, '../dist/main.js');
const CRON = path.resolve(__dirname, '../dist/cron.js');
const PRELOAD = require.resolve('@mcp/runtime/dist/telemetry-preload.js');
const LIVE = 'agent_mcp_connection_logs';
const ROWS = 30_000;
/** OTLP span kinds. */
const SERVER = 2;
const CLIENT = 3;

let db: TestDatabase;
let pg: Client;
let token: string;
let fx: Fixture;

/** Tracing on, exporting to the test's OTLP receiver. */
function tracingEnv(service: string, endpoint: string): Record<string, string> {
  return {
    OTEL_SERVICE_NAME: service,
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_SDK_DISABLED: 'false',
  };
}

beforeAll(async () => {
  db = await freshDatabase();
  pg = new Client({ connectionString: db.url });
  await pg.connect();
  fx = await createFixture(pg, 'lifecycle');
  ({ token } = await provisionPrincipal(pg, { username: 'cron', roles: ['retention_operator'] }));
});
afterAll(async () => {
  await pg?.end();
  await db?.drop();
});

async function startService(env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<{ child: ChildProcess; address: string; exited: Promise<number | null> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [...nodeArgs, MAIN], {
    env: { ...process.env, DATABASE_URL: db.url, GRPC_HOST: '127.0.0.1', GRPC_PORT: String(port), LOG_LEVEL: 'warn', RETENTION_BATCH_SIZE: '1000', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const address = `127.0.0.1:${port}`;
  await waitForServing(address, 20_000);
  return { child, address, exited };
}

interface CronResult {
  code: number;
  output: { ok: boolean; trace_id?: string; code?: string; error?: string; run?: { id: string; status: string; tables: Array<{ table: string; rowsArchived: string }> } };
}

function cron(address: string, args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<CronResult> {
  return new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      [...nodeArgs, CRON, ...args],
      { env: { ...process.env, RETENTION_ADDRESS: address, MCP_API_KEY: token, ...env }, timeout: 60_000 },
      (err, stdout) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        try {
          resolve({ code, output: JSON.parse(stdout) });
        } catch {
          reject(new Error(`cron printed no JSON (exit ${code}): ${stdout} ${err?.message ?? ''}`));
        }
      },
    ),
  );
}

/** Rows the run has committed so far on the trim step of the default partition. */
async function committedRows(runId: string): Promise<number> {
  const { rows } = await pg.query(
    `SELECT coalesce(sum((s->>'rows')::int), 0)::int AS n FROM retention_runs r, jsonb_array_elements(r.results->$2->'steps') s WHERE r.id = $1`,
    [runId, LIVE],
  );
  return rows[0].n;
}

describe('a run killed half way', () => {
  it('leaves every committed batch counted and nothing half done; the next run (from the cron CLI) finishes and the counts reconcile', async () => {
    // 200 days old, no partition: the default partition, trimmed row by row, 1,000 rows per transaction.
    await pg.query(
      `INSERT INTO ${LIVE} (connection_id, event_type, timestamp)
       SELECT $1, 'usage_recorded', $2::timestamptz + make_interval(secs => i) FROM generate_series(1, $3) AS i`,
      [fx.connectionId, utcDay(200), ROWS],
    );
    const liveBefore = await count(pg, LIVE);

    const first = await startService();
    const started = cron(first.address, ['run', '--policy', LIVE]);
    let runId: string | undefined;
    for (let i = 0; i < 1000; i++) {
      const { rows } = await pg.query(`SELECT id FROM retention_runs WHERE status = 'running'`);
      runId = rows[0]?.id;
      if (runId && (await committedRows(runId)) >= 5_000) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    first.child.kill('SIGKILL');
    await first.exited;
    const killed = await started;
    expect(killed.code).not.toBe(0);
    expect(killed.output.ok).toBe(false);

    // Every committed batch moved its rows and counted them in the same transaction.
    const moved = await committedRows(runId!);
    expect(moved).toBeGreaterThanOrEqual(5_000);
    expect(moved).toBeLessThan(ROWS);
    expect(await count(pg, `${LIVE}_archive`)).toBe(moved);
    expect(await count(pg, LIVE)).toBe(liveBefore - moved);

    const second = await startService();
    try {
      const done = await cron(second.address, ['run', '--policy', LIVE, '--deadline-ms', '60000']);
      expect(done.code).toBe(0);
      expect(done.output.ok).toBe(true);
      expect(done.output.run!.status).toBe('RUN_STATUS_SUCCEEDED');
      const archivedNow = Number(done.output.run!.tables.find((t) => t.table === LIVE)!.rowsArchived);
      expect(moved + archivedNow).toBe(ROWS);
      expect(await count(pg, `${LIVE}_archive`)).toBe(ROWS);
      expect(await count(pg, LIVE)).toBe(liveBefore - ROWS);
      const { rows } = await pg.query(`SELECT status, error FROM retention_runs WHERE id = $1`, [runId]);
      expect(rows[0].status).toBe('failed');
      expect(rows[0].error).toContain('interrupted');
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  });
});

describe('the cron CLI', () => {
  it('exits non-zero on a refused call and on bad usage, printing the reason', async () => {
    const svc = await startService();
    try {
      const unknown = await cron(svc.address, ['run', '--policy', 'nope']);
      expect(unknown).toMatchObject({ code: 1, output: { ok: false, code: 'NOT_FOUND' } });
      const badKey = await cron(svc.address, ['run'], { MCP_API_KEY: 'mcp_notarealkey_x' });
      expect(badKey).toMatchObject({ code: 1, output: { ok: false, code: 'UNAUTHENTICATED' } });
      const dry = await cron(svc.address, ['run', '--dry-run']);
      expect(dry).toMatchObject({ code: 0, output: { ok: true } });
    } finally {
      svc.child.kill('SIGTERM');
      await svc.exited;
    }
    await expect(cron('127.0.0.1:1', ['purge'])).rejects.toThrow(/exit 2/);
  });

  it('propagates its trace: CronJob → service → SQL is one trace, and the service audits the run under it', async () => {
    const receiver = await startOtlpReceiver();
    const svc = await startService(tracingEnv('retention', receiver.endpoint), ['--require', PRELOAD]);
    let res: CronResult;
    try {
      res = await cron(svc.address, ['run', '--dry-run'], tracingEnv('retention-cron', receiver.endpoint), ['--require', PRELOAD]);
    } finally {
      svc.child.kill('SIGTERM'); // the service flushes its spans as it shuts down
      await svc.exited;
      receiver.close();
    }
    expect(res.code).toBe(0);
    const traceId = res.output.trace_id;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    const { rows } = await pg.query(`SELECT trace_id FROM audit_logs WHERE resource_id = $1`, [res.output.run!.id]);
    expect(rows).toEqual([{ trace_id: traceId }]);

    const inTrace = receiver.spans.filter((s) => s.traceId === traceId);
    const method = 'RetentionService/RunRetention';
    const clientSpan = inTrace.find((s) => s.service === 'retention-cron' && s.kind === CLIENT && s.name.endsWith(method));
    expect(clientSpan, JSON.stringify(inTrace.map((s) => [s.service, s.name, s.kind]))).toBeDefined();
    const serverSpan = inTrace.find((s) => s.service === 'retention' && s.kind === SERVER && s.name.endsWith(method));
    expect(serverSpan?.parentSpanId).toBe(clientSpan!.spanId);
    // The run's SQL (its record, the plan, the audit entry) hangs directly below the server span.
    const sqlSpans = inTrace.filter((s) => s.service === 'retention' && s.kind === CLIENT && /^pg\./.test(s.name));
    const statements = sqlSpans.flatMap((s) => s.attributes?.filter((a) => a.key === 'db.query.text').map((a) => a.value.stringValue ?? '') ?? []);
    expect(statements).toEqual(expect.arrayContaining([expect.stringMatching(/^INSERT INTO "?retention_runs/), expect.stringMatching(/^INSERT INTO "?audit_logs/)]));
    expect(sqlSpans.filter((s) => s.parentSpanId !== serverSpan!.spanId)).toEqual([]);
  });
});
