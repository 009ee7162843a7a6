import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { retention } from '@mcp/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  count,
  createFixture,
  DAY_MS,
  daysAgo,
  expectGrpcError,
  insertConnectionLogs,
  insertStatusLogs,
  startHarness,
  totals,
  utcDay,
  type Fixture,
  type Harness,
} from './harness';

const { StepAction, RunStatus, HoldSubjectType } = retention;
const LIVE = 'agent_mcp_connection_logs';
const ARCHIVE = 'agent_mcp_connection_logs_archive';
const HOUR_MS = 3_600_000;

let h: Harness;
let fx: Fixture;

beforeAll(async () => {
  h = await startHarness({ batchSize: 1000 });
  fx = await createFixture(h.pg, 'runs');
});
afterAll(async () => h?.close());

async function ensurePartition(table: string, at: Date): Promise<string> {
  const { rows } = await h.pg.query('SELECT ensure_partition($1, $2) AS name', [table, at]);
  return rows[0].name;
}

async function parentOf(relation: string): Promise<string | null> {
  const { rows } = await h.pg.query(
    `SELECT i.inhparent::regclass::text AS parent FROM pg_inherits i WHERE i.inhrelid = to_regclass($1)`,
    [relation],
  );
  return rows[0]?.parent ?? null;
}

/** What a report says a table lost or gained, and the step list, comparable between a dry and a real run. */
function outcome(t: retention.TableResult) {
  return {
    rowsArchived: t.rowsArchived,
    rowsDeleted: t.rowsDeleted,
    archiveRowsExpired: t.archiveRowsExpired,
    heldRows: t.heldRows,
    rowsDrained: t.rowsDrained,
    partitionsCreated: t.partitionsCreated,
    steps: t.steps.map((s) => ({ action: StepAction[s.action], partition: s.partition, rows: s.rows, heldRows: s.heldRows })),
  };
}

async function run(policy: string, dryRun = false): Promise<retention.Run> {
  const { run } = await h.call('runRetention', { policy, dryRun });
  return run!;
}

describe('connection logs: archive whole partitions, trim the rest, drain the default partition', () => {
  let real: retention.Run;
  let before: Map<string, number>;

  it('a dry run reports exactly what the real run then does, and changes nothing', async () => {
    // Five whole days 100–104 days old, each its own partition (the partition path).
    for (let d = 100; d <= 104; d++) {
      await ensurePartition(LIVE, utcDay(d));
      await insertConnectionLogs(h.pg, fx.connectionId, new Date(utcDay(d).getTime() + HOUR_MS), new Date(utcDay(d).getTime() + 20 * HOUR_MS), 200);
    }
    // 120 days old with no partition: lands in the default partition (the row path).
    await insertConnectionLogs(h.pg, fx.connectionId, new Date(utcDay(120).getTime() + HOUR_MS), new Date(utcDay(120).getTime() + 20 * HOUR_MS), 300);
    // 3 days old, also in the default partition, inside the hot window: drained into a new partition.
    await insertConnectionLogs(h.pg, fx.connectionId, new Date(utcDay(3).getTime() + HOUR_MS), new Date(utcDay(3).getTime() + 2 * HOUR_MS), 50);
    // Around the cutoff (90 days): the partition holding it is partly expired (row path). The rows
    // before it stay on its UTC day whatever the time of day (just after midnight, an hour before it
    // is a whole expired day of its own).
    const cutoff = daysAgo(90).getTime();
    const sinceMidnight = cutoff % DAY_MS;
    await ensurePartition(LIVE, new Date(cutoff));
    await ensurePartition(LIVE, new Date(cutoff + HOUR_MS));
    await insertConnectionLogs(h.pg, fx.connectionId, new Date(cutoff - 0.9 * sinceMidnight), new Date(cutoff - 0.1 * sinceMidnight), 40);
    await insertConnectionLogs(h.pg, fx.connectionId, new Date(cutoff + 10 * 60_000), new Date(cutoff + 50 * 60_000), 60);

    const { rows } = await h.pg.query(`SELECT id, extract(epoch FROM timestamp) * 1000 AS ms FROM ${LIVE}`);
    before = new Map(rows.map((r) => [r.id, Number(r.ms)]));
    const archiveBefore = await count(h.pg, ARCHIVE);

    const dry = await run(LIVE, true);
    expect(dry).toMatchObject({ dryRun: true, status: RunStatus.RUN_STATUS_SUCCEEDED, policy: LIVE });
    expect(await count(h.pg, LIVE)).toBe(before.size);
    expect(await count(h.pg, ARCHIVE)).toBe(archiveBefore);
    expect(await count(h.pg, `${LIVE}_default`)).toBe(350);

    real = await run(LIVE);
    expect(real.status).toBe(RunStatus.RUN_STATUS_SUCCEEDED);
    expect(outcome(totals(real, LIVE))).toEqual(outcome(totals(dry, LIVE)));
    expect(totals(real, LIVE)).toMatchObject({ rowsArchived: String(5 * 200 + 300 + 40), rowsDeleted: '0', rowsDrained: '50' });
    const actions = totals(real, LIVE).steps.map((s) => StepAction[s.action]);
    expect(actions.filter((a) => a === 'STEP_ACTION_ARCHIVE_PARTITION')).toHaveLength(5);
    expect(actions).toContain('STEP_ACTION_TRIM_ROWS');
    expect(actions).toContain('STEP_ACTION_DRAIN_DEFAULT');
    expect(totals(real, LIVE).steps.every((s) => s.done)).toBe(true);
  });

  it('exactly the rows past the cutoff left the live table, and the archive holds exactly them', async () => {
    const cutoff = totals(real, LIVE).cutoff!.getTime();
    const expired = [...before].filter(([, ms]) => ms < cutoff).map(([id]) => id).sort();
    const kept = [...before].filter(([, ms]) => ms >= cutoff).map(([id]) => id).sort();
    const { rows: live } = await h.pg.query(`SELECT id FROM ${LIVE} ORDER BY id`);
    const { rows: archived } = await h.pg.query(`SELECT id FROM ${ARCHIVE} ORDER BY id`);
    expect(live.map((r) => r.id)).toEqual(kept);
    expect(archived.map((r) => r.id)).toEqual(expired);
    expect(await count(h.pg, `${LIVE}_default`)).toBe(0);
    // Whole days moved as partitions: no row was copied.
    for (let d = 100; d <= 104; d++) {
      const name = `${LIVE}_p${utcDay(d).toISOString().slice(0, 10).replace(/-/g, '')}`;
      expect(await parentOf(name)).toBe(ARCHIVE);
    }
  });

  it('records the run: history, system_logs, audit rows; a second run finds nothing to do', async () => {
    const { rows: logs } = await h.pg.query(`SELECT details, metadata FROM system_logs WHERE operation = 'retention_run' AND metadata->>'run_id' = $1`, [real.id]);
    expect(logs).toHaveLength(1);
    expect(logs[0].details).toContain(`${LIVE}: 1340 archived, 0 deleted`);
    const { rows: audit } = await h.pg.query(`SELECT action_type, success FROM audit_logs WHERE resource_id = $1 ORDER BY created_at`, [real.id]);
    expect(audit).toEqual([
      { action_type: 'retention.run.start', success: true },
      { action_type: 'retention.run', success: true },
    ]);
    const { run: fetched } = await h.call('getRun', { id: real.id });
    expect(fetched).toEqual(real);

    const again = await run(LIVE);
    expect(totals(again, LIVE)).toMatchObject({ rowsArchived: '0', rowsDeleted: '0', rowsDrained: '0' });
  });

  it('expires the archive after its own window: whole archive partitions dropped, the rest row by row', async () => {
    await h.call('upsertPolicy', { policy: { table: LIVE, hotDays: 90, archiveBeforeDelete: true, archiveDays: 12, enabled: true } });
    const { rows } = await h.pg.query(`SELECT extract(epoch FROM timestamp) * 1000 AS ms FROM ${ARCHIVE}`);
    const dry = await run(LIVE, true);
    const real = await run(LIVE);
    expect(outcome(totals(real, LIVE))).toEqual(outcome(totals(dry, LIVE)));
    const archiveCutoff = totals(real, LIVE).archiveCutoff!;
    expect(archiveCutoff.getTime()).toBe(totals(real, LIVE).cutoff!.getTime() - 12 * DAY_MS);
    const expired = rows.filter((r) => Number(r.ms) < archiveCutoff.getTime()).length;
    // 102 days ago and older: the 120-day-old rows, days 103–104 as whole partitions, and the rows of
    // day 102 (01:00–20:00) before the cutoff's time of day: none just after midnight UTC.
    expect(expired).toBeGreaterThanOrEqual(300 + 2 * 200);
    expect(totals(real, LIVE).archiveRowsExpired).toBe(String(expired));
    expect(totals(real, LIVE).steps.filter((s) => s.action === StepAction.STEP_ACTION_EXPIRE_ARCHIVE_PARTITION)).toHaveLength(2);
    expect(await count(h.pg, `${ARCHIVE} WHERE timestamp < $1`, [archiveCutoff])).toBe(0);
    expect(await count(h.pg, ARCHIVE)).toBe(rows.length - expired);
    await h.call('upsertPolicy', { policy: { table: LIVE, hotDays: 90, archiveBeforeDelete: true, archiveDays: 275, enabled: true } });
  });

  it('finishes a partition an interrupted run left detached', async () => {
    const name = await ensurePartition(LIVE, utcDay(150));
    await insertConnectionLogs(h.pg, fx.connectionId, new Date(utcDay(150).getTime() + HOUR_MS), new Date(utcDay(150).getTime() + 2 * HOUR_MS), 30);
    await h.pg.query(`ALTER TABLE ${LIVE} DETACH PARTITION ${name}`);
    expect(await parentOf(name)).toBeNull();
    const dry = await run(LIVE, true);
    const real = await run(LIVE);
    expect(outcome(totals(real, LIVE))).toEqual(outcome(totals(dry, LIVE)));
    const step = totals(real, LIVE).steps.find((s) => s.partition === name)!;
    expect(step).toMatchObject({ action: StepAction.STEP_ACTION_FINISH_DETACHED, rows: '30', done: true });
    expect(await parentOf(name)).toBe(ARCHIVE);
    expect(await count(h.pg, ARCHIVE + ' WHERE timestamp >= $1 AND timestamp < $2', [utcDay(150), utcDay(149)])).toBe(30);
  });
});

describe('status logs without archiving: legal holds', () => {
  const LIVE_S = 'mcp_server_status_logs';
  const ARCHIVE_S = 'mcp_server_status_logs_archive';
  let held: Fixture;
  let other: Fixture;
  let holdId: string;

  it('drops expired partitions and rows, except held rows, which go to the archive and stay there', async () => {
    held = await createFixture(h.pg, 'held');
    other = await createFixture(h.pg, 'other');
    await h.call('upsertPolicy', { policy: { table: LIVE_S, hotDays: 30, archiveBeforeDelete: false, archiveDays: 5, enabled: true } });
    for (const f of [held, other]) {
      for (let d = 40; d <= 42; d++) {
        await ensurePartition(LIVE_S, utcDay(d));
        await insertStatusLogs(h.pg, f.serverId, new Date(utcDay(d).getTime() + HOUR_MS), new Date(utcDay(d).getTime() + 3 * HOUR_MS), 100);
      }
      await insertStatusLogs(h.pg, f.serverId, new Date(utcDay(60).getTime() + HOUR_MS), new Date(utcDay(60).getTime() + 3 * HOUR_MS), 70);
    }
    const { hold } = await h.call('placeLegalHold', {
      subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_SERVER,
      subjectId: held.serverId,
      reason: 'litigation 2025-17',
    });
    holdId = hold!.id;
    const liveBefore = await count(h.pg, LIVE_S);

    const dry = await run(LIVE_S, true);
    const real = await run(LIVE_S);
    expect(outcome(totals(real, LIVE_S))).toEqual(outcome(totals(dry, LIVE_S)));
    expect(totals(real, LIVE_S)).toMatchObject({ rowsDeleted: String(370), rowsArchived: String(370), heldRows: String(370) });
    expect(await count(h.pg, LIVE_S)).toBe(liveBefore - 740);
    expect(await count(h.pg, `${LIVE_S} WHERE timestamp < $1`, [totals(real, LIVE_S).cutoff])).toBe(0);
    // Every held row is in the archive, and nothing else is.
    expect(await count(h.pg, `${ARCHIVE_S} WHERE server_id = $1`, [held.serverId])).toBe(370);
    expect(await count(h.pg, ARCHIVE_S)).toBe(370);

    // The archive window (5 days past the 30) has passed for all of them: the hold keeps them.
    const again = await run(LIVE_S);
    expect(totals(again, LIVE_S)).toMatchObject({ archiveRowsExpired: '0', heldRows: '370' });
    expect(await count(h.pg, ARCHIVE_S)).toBe(370);
  });

  it('once the hold is released the archive expires them', async () => {
    const { hold } = await h.call('releaseLegalHold', { id: holdId, reason: 'case closed' });
    expect(hold).toMatchObject({ id: holdId, releaseReason: 'case closed' });
    const real = await run(LIVE_S);
    expect(totals(real, LIVE_S)).toMatchObject({ archiveRowsExpired: '370', heldRows: '0' });
    expect(await count(h.pg, ARCHIVE_S)).toBe(0);
  });
});

describe('audit logs: archived with the seed checksum, held rows flagged', () => {
  it('moves audit rows past 90 days into audit_logs_archive with sha256(row_to_json) and legal-hold markers', async () => {
    const actorHeld = crypto.randomUUID();
    const actorFree = crypto.randomUUID();
    await h.pg.query('INSERT INTO users (id, username, email) VALUES ($1, $2, $2 || $3)', [actorHeld, 'audit-held', '@example.test']);
    await ensurePartition('audit_logs', daysAgo(125));
    await h.pg.query(
      `INSERT INTO audit_logs (user_id, action_type, resource_type, description, request_data, created_at)
       SELECT CASE WHEN i % 2 = 0 THEN $1::uuid ELSE $2::uuid END, 'config.update', 'configuration',
              'change ' || i || E' "quoted" C:\\path\\n',
              jsonb_build_object('i', i), now() - make_interval(days => 95 + i)
         FROM generate_series(1, 40) AS i`,
      [actorHeld, actorFree],
    );
    await h.call('upsertPolicy', { policy: { table: 'audit_logs', hotDays: 90, archiveBeforeDelete: true, archiveDays: 365, enabled: true } });
    await h.call('placeLegalHold', { subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_USER, subjectId: actorHeld, reason: 'regulator request' });
    const { rows: expected } = await h.pg.query(
      `SELECT id, row_to_json(a)::text AS json, user_id FROM audit_logs a WHERE created_at < now() - interval '90 days' ORDER BY id`,
    );
    expect(expected).toHaveLength(40);

    const dry = await run('audit_logs', true);
    const real = await run('audit_logs');
    expect(outcome(totals(real, 'audit_logs'))).toEqual(outcome(totals(dry, 'audit_logs')));
    expect(totals(real, 'audit_logs')).toMatchObject({ rowsArchived: '40', heldRows: '20' });
    expect(await count(h.pg, `audit_logs WHERE created_at < now() - interval '90 days'`)).toBe(0);

    const { rows: archived } = await h.pg.query(
      `SELECT original_audit_log_id AS id, audit_data::text AS json, checksum,
              legal_hold, retention_until, (audit_data->>'created_at')::timestamptz AS created_at
         FROM audit_logs_archive ORDER BY original_audit_log_id`,
    );
    expect(archived.map((r) => [r.id, r.json])).toEqual(expected.map((r) => [r.id, r.json]));
    for (const r of archived) {
      // sha256 of the exact JSON text, computed independently of PostgreSQL.
      expect(r.checksum).toBe(createHash('sha256').update(r.json, 'utf8').digest('hex'));
      const isHeld = expected.find((e) => e.id === r.id)!.user_id === actorHeld;
      expect(r.legal_hold).toBe(isHeld);
      if (isHeld) expect(r.retention_until).toBeNull();
      else expect(r.retention_until.getTime()).toBe(r.created_at.getTime() + (90 + 365) * DAY_MS);
    }
  });
});

describe('concurrent runs', () => {
  it('a second run while one works is refused with ABORTED naming the run in progress', async () => {
    const f = await createFixture(h.pg, 'concurrent');
    await insertConnectionLogs(h.pg, f.connectionId, new Date(utcDay(200).getTime()), new Date(utcDay(200).getTime() + 20 * HOUR_MS), 20_000);
    const first = run(LIVE);
    let runningId: string | undefined;
    for (let i = 0; i < 200 && !runningId; i++) {
      const { rows } = await h.pg.query(`SELECT id FROM retention_runs WHERE status = 'running'`);
      runningId = rows[0]?.id;
      if (!runningId) await new Promise((r) => setTimeout(r, 10));
    }
    expect(runningId).toBeDefined();
    const err = await expectGrpcError(run(LIVE));
    expect(err.code).toBe(grpc.status.ABORTED);
    expect(err.details).toBe(`a run is in progress (run id ${runningId})`);
    const done = await first;
    expect(done).toMatchObject({ id: runningId, status: RunStatus.RUN_STATUS_SUCCEEDED });
    expect(totals(done, LIVE).rowsArchived).toBe('20000');
  });
});
