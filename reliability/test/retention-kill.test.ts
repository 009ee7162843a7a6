/**
 * Retention killed mid-run, then rerun: expired connection logs (policy:
 * delete) and status logs (policy: archive, then expire from the archive),
 * some of them under legal holds (one server; one time range). The first run
 * — started by the CronJob's CLI — is killed with SIGKILL half way; a new
 * process reruns it (and runs once more, which expires what the rerun archived
 * past the archive's retention). The counts of the runs reconcile with what left the
 * live tables and what the archives hold, the killed run is marked failed,
 * and every held row still exists exactly once, unchanged.
 */
import { execFile } from 'node:child_process';
import { retention } from '@mcp/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RssSampler, Scenario, createConnections, distFile, eventually, recordResult, type ConnectionFixture } from '../src';

const CONNECTION_LOGS = 'agent_mcp_connection_logs';
const STATUS_LOGS = 'mcp_server_status_logs';
const CONNECTION_ROWS = 20_000;
const STATUS_ROWS = 6_000;
/** Rows per transaction of the row paths: small, so the run is many transactions and the kill lands between and inside them. */
const BATCH = '500';

let scenario: Scenario;
let held: ConnectionFixture;
let free: ConnectionFixture;
const start = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate()) - 200 * 86_400_000);
/** The time-range hold: [start + 2 500 s, start + 3 000 s). */
const windowStart = new Date(start.getTime() + 2_500_000);
const windowEnd = new Date(start.getTime() + 3_000_000);

beforeAll(async () => {
  scenario = await Scenario.open('retention-kill');
  [held, free] = await createConnections(scenario.pool, 'retention', 2);
});
afterAll(async () => scenario?.close());

/** Held rows of a table, live and archived: id → contents (as JSON). Held: the held server's, or inside the time range. */
async function heldRows(table: string, subject: 'connection_id' | 'server_id', subjectId: string): Promise<Map<string, string[]>> {
  const { rows } = await scenario.pool.query<{ id: string; row: string }>(
    `SELECT id::text, to_jsonb(t)::text AS row
       FROM (SELECT * FROM ${table} UNION ALL SELECT * FROM ${table}_archive) t
      WHERE ${subject} = $1 OR (timestamp >= $2 AND timestamp < $3)`,
    [subjectId, windowStart, windowEnd],
  );
  const byId = new Map<string, string[]>();
  for (const r of rows) byId.set(r.id, [...(byId.get(r.id) ?? []), r.row]);
  return byId;
}

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await scenario.pool.query(`SELECT count(*)::int AS n FROM ${sql}`, params);
  return rows[0].n;
}

/** Sums over the steps the given runs committed, per action, for one table. */
async function committed(runIds: string[], table: string): Promise<Record<string, { rows: number; heldRows: number }>> {
  const { rows } = await scenario.pool.query(
    `SELECT s->>'action' AS action, sum((s->>'rows')::int)::int AS rows, sum((s->>'heldRows')::int)::int AS "heldRows"
       FROM retention_runs r, jsonb_array_elements(r.results->$2->'steps') s WHERE r.id = ANY($1::uuid[]) GROUP BY 1`,
    [runIds, table],
  );
  return Object.fromEntries(rows.map((r) => [r.action, { rows: r.rows, heldRows: r.heldRows }]));
}

/** E.g. "5000 rows (trim_rows 5000)", or "no rows". */
function describeSteps(steps: Record<string, { rows: number }>): string {
  const done = Object.entries(steps).filter(([, s]) => s.rows > 0);
  if (done.length === 0) return 'no rows';
  return `${done.reduce((n, [, s]) => n + s.rows, 0)} rows (${done.map(([action, s]) => `${action} ${s.rows}`).join(', ')})`;
}

function cron(address: string, args: string[]): Promise<{ code: number; output: { ok: boolean; run?: { id: string; status: string } } }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [distFile('retention', 'cron.js'), ...args],
      { env: { ...process.env, RETENTION_ADDRESS: address, MCP_API_KEY: scenario.principals.operator.token }, timeout: 120_000 },
      (err, stdout) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output: JSON.parse(stdout || '{"ok":false}') }),
    ),
  );
}

describe('retention killed mid-run, then rerun', () => {
  it('reconciles the counts of both runs and touches no held row', async () => {
    const { pool } = scenario;
    await pool.query(
      `INSERT INTO ${CONNECTION_LOGS} (connection_id, event_type, event_details, timestamp)
       SELECT CASE WHEN i % 10 = 0 THEN $1 ELSE $2 END::uuid, 'usage_recorded', 'row ' || i, $3::timestamptz + make_interval(secs => i * 0.5)
         FROM generate_series(1, $4) AS i`,
      [held.connectionId, free.connectionId, start, CONNECTION_ROWS],
    );
    await pool.query(
      `INSERT INTO ${STATUS_LOGS} (server_id, source, details, timestamp)
       SELECT CASE WHEN i % 10 = 0 THEN $1 ELSE $2 END::uuid, 'heartbeat', 'row ' || i, $3::timestamptz + make_interval(secs => i * 0.5)
         FROM generate_series(1, $4) AS i`,
      [held.serverId, free.serverId, start, STATUS_ROWS],
    );
    await scenario.start(['retention'], { env: { RETENTION_BATCH_SIZE: BATCH } });
    const client = scenario.retentionClient();
    // Connection logs: expired rows are deleted (held ones go to the archive instead), archive rows expire after a day.
    await client.upsertPolicy({ policy: { table: CONNECTION_LOGS, hotDays: 30, archiveBeforeDelete: false, archiveDays: 1, enabled: true } });
    // Status logs keep the migration's policy: archived after 30 days, expired from the archive 152 days later (so these 200-day-old rows go).
    await client.placeLegalHold({ subjectType: retention.HoldSubjectType.HOLD_SUBJECT_TYPE_SERVER, subjectId: held.serverId, reason: 'litigation' });
    await client.placeLegalHold({ subjectType: retention.HoldSubjectType.HOLD_SUBJECT_TYPE_TIME_RANGE, startTime: windowStart, endTime: windowEnd, reason: 'incident' });

    const heldBefore: Record<string, Map<string, string[]>> = {
      [CONNECTION_LOGS]: await heldRows(CONNECTION_LOGS, 'connection_id', held.connectionId),
      [STATUS_LOGS]: await heldRows(STATUS_LOGS, 'server_id', held.serverId),
    };
    const liveBefore: Record<string, number> = { [CONNECTION_LOGS]: await count(CONNECTION_LOGS), [STATUS_LOGS]: await count(STATUS_LOGS) };
    const sampler = new RssSampler(() => scenario.services.map((s) => ({ name: s.name, pid: s.pid }))).start();

    const first = scenario.service('retention');
    const killedRun = cron(first.address, ['run', '--policy', 'all']);
    let runId = '';
    await eventually(
      async () => {
        const { rows } = await pool.query(`SELECT id FROM retention_runs WHERE status = 'running' AND NOT dry_run`);
        runId = rows[0]?.id ?? '';
        return runId !== '' && ((await committed([runId], CONNECTION_LOGS)).trim_rows?.rows ?? 0) >= 5_000;
      },
      60_000,
      'the first run to commit 5 000 rows',
    );
    const exit = await first.kill();
    const killed = await killedRun;
    // What the killed run had committed, per table (the kill came once 5 000 connection-log rows were in).
    const afterKill: Record<string, Awaited<ReturnType<typeof committed>>> = {
      [CONNECTION_LOGS]: await committed([runId], CONNECTION_LOGS),
      [STATUS_LOGS]: await committed([runId], STATUS_LOGS),
    };

    const { service: second } = await scenario.restart('retention', 'SIGKILL');
    const rerun = await cron(second.address, ['run', '--policy', 'all', '--deadline-ms', '120000']);
    // A run plans before it acts: what the rerun archived past the archive's retention expires in the next run.
    const next = await cron(second.address, ['run', '--policy', 'all', '--deadline-ms', '120000']);
    sampler.stop();
    const runs = [runId, rerun.output.run?.id ?? runId, next.output.run?.id ?? runId];

    const heldAfter: Record<string, Map<string, string[]>> = {
      [CONNECTION_LOGS]: await heldRows(CONNECTION_LOGS, 'connection_id', held.connectionId),
      [STATUS_LOGS]: await heldRows(STATUS_LOGS, 'server_id', held.serverId),
    };
    const { rows: killedStatus } = await pool.query(`SELECT status, error FROM retention_runs WHERE id = $1`, [runId]);
    const checks = [];
    for (const table of [CONNECTION_LOGS, STATUS_LOGS]) {
      const steps = await committed(runs, table);
      const sum = (actions: string[], field: 'rows' | 'heldRows') => actions.reduce((n, a) => n + (steps[a]?.[field] ?? 0), 0);
      const leftLive = sum(['trim_rows', 'drop_partition', 'archive_partition', 'finish_detached'], 'rows');
      const expired = sum(['expire_archive_rows', 'expire_archive_partition'], 'rows');
      const before = heldBefore[table];
      const after = heldAfter[table];
      const changed = [...before].filter(([id, row]) => after.get(id)?.length !== 1 || after.get(id)![0] !== row[0]).length;
      const live = await count(table);
      const archived = await count(`${table}_archive`);
      checks.push({ table, leftLive, expired, live, archived, heldCount: before.size, changed, extra: [...after.keys()].filter((id) => !before.has(id)).length });
      recordResult({
        scenario: 'retention-kill',
        label: table,
        operations: liveBefore[table],
        acknowledged: before.size,
        stored: before.size - changed,
        lost: [...before.keys()].filter((id) => !after.has(id)).length,
        duplicated: [...after.values()].filter((rows) => rows.length > 1).length,
        peakRss: sampler.peak(),
        notes: [
          `killed run ${JSON.stringify(exit)} after committing ${describeSteps(afterKill[table])} of this table (its CLI exited ${killed.code}); the rerun exited ${rerun.code} with ${rerun.output.run?.status}, the next run ${next.code} with ${next.output.run?.status}`,
          `${liveBefore[table]} expired rows in the live table, ${before.size} of them held: the runs counted ${leftLive} leaving the live table and ${expired} expiring from the archive; now live ${live}, archived ${archived}; held rows changed or missing: ${changed}`,
        ],
      });
    }

    expect(exit.signal).toBe('SIGKILL');
    expect(killed.code).not.toBe(0);
    expect(rerun.code).toBe(0);
    expect(rerun.output.run?.status).toBe('RUN_STATUS_SUCCEEDED');
    expect(next.output.run?.status).toBe('RUN_STATUS_SUCCEEDED');
    expect(killedStatus[0].status).toBe('failed');
    expect(killedStatus[0].error).toContain('interrupted');
    expect(afterKill[CONNECTION_LOGS].trim_rows.rows).toBeLessThan(CONNECTION_ROWS);
    for (const c of checks) {
      expect(c.heldCount, c.table).toBeGreaterThan(0);
      expect(c.changed, `${c.table}: held rows changed or missing`).toBe(0);
      expect(c.extra, c.table).toBe(0);
      // Everything expired left the live table, and the runs counted exactly that.
      expect(c.live, c.table).toBe(0);
      expect(c.leftLive, c.table).toBe(liveBefore[c.table]);
      // Only the held rows remain, in the archive: archived minus expired (nothing was archived before).
      expect(c.archived, c.table).toBe(c.heldCount);
    }
    const connection = checks[0];
    const status = checks[1];
    // Delete policy: only held rows were archived; archive policy: all were, and all but the held ones expired.
    expect(connection.expired).toBe(0);
    expect(status.expired).toBe(liveBefore[STATUS_LOGS] - status.heldCount);
  });
});
