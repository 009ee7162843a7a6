import { randomUUID } from 'node:crypto';
import { retention } from '@mcp/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepRecord, TableRecord } from '../src/records';
import { RetentionRepository } from '../src/repository';
import { walCompressionFor } from '../src/session';
import { count, createFixture, DAY_MS, daysAgo, insertConnectionLogs, startHarness, totals, utcDay, type Fixture, type Harness } from './harness';

const { StepAction, RunStatus } = retention;
const LIVE = 'agent_mcp_connection_logs';
const ARCHIVE = 'agent_mcp_connection_logs_archive';
const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;

let h: Harness;
let fx: Fixture;

beforeAll(async () => {
  // Small batches: the trim takes several transactions while the drop lanes work.
  h = await startHarness({ batchSize: 40 });
  fx = await createFixture(h.pg, 'drops');
  await h.call('upsertPolicy', { policy: { table: LIVE, hotDays: 30, archiveBeforeDelete: false, archiveDays: 30, enabled: true } });
});
afterAll(async () => h?.close());

async function ensurePartition(at: Date): Promise<string> {
  const { rows } = await h.pg.query('SELECT ensure_partition($1, $2) AS name', [LIVE, at]);
  return rows[0].name;
}

/** Whole days `from`..`to` days old, each its own partition with `rowsFor(day)` rows; their names and row counts. */
async function fillDays(from: number, to: number, rowsFor: (day: number) => number): Promise<Map<string, number>> {
  const days = new Map<string, number>();
  for (let d = from; d <= to; d++) {
    const name = await ensurePartition(utcDay(d));
    await insertConnectionLogs(h.pg, fx.connectionId, new Date(utcDay(d).getTime() + HOUR_MS), new Date(utcDay(d).getTime() + 20 * HOUR_MS), rowsFor(d));
    days.set(name, rowsFor(d));
  }
  return days;
}

async function tableExists(name: string): Promise<boolean> {
  const { rows } = await h.pg.query('SELECT to_regclass($1) IS NOT NULL AS exists', [name]);
  return rows[0].exists;
}

async function detach(name: string): Promise<void> {
  await h.pg.query(`ALTER TABLE ${LIVE} DETACH PARTITION ${name}`);
}

function outcome(t: retention.TableResult) {
  return {
    rowsArchived: t.rowsArchived,
    rowsDeleted: t.rowsDeleted,
    heldRows: t.heldRows,
    steps: t.steps.map((s) => ({ action: StepAction[s.action], partition: s.partition, rows: s.rows, heldRows: s.heldRows })),
  };
}

/** Rows each step removed, by partition, for the steps of `action`. */
function rowsByPartition(t: retention.TableResult, action: retention.StepAction): Map<string, number> {
  return new Map(t.steps.filter((s) => s.action === action).map((s) => [s.partition, Number(s.rows)]));
}

async function run(dryRun = false): Promise<retention.Run> {
  const { run } = await h.call('runRetention', { policy: LIVE, dryRun });
  return run!;
}

/**
 * A run that failed with `error`: stored as returned, and of the whole
 * partitions in `days` exactly those whose step is done were dropped, with
 * all their rows counted. Its result for the live table.
 */
async function expectFailedRun(failed: retention.Run, error: string, days: Map<string, number>): Promise<retention.TableResult> {
  expect(failed.status).toBe(RunStatus.RUN_STATUS_FAILED);
  expect(failed.error).toContain(error);
  const { run: stored } = await h.call('getRun', { id: failed.id });
  expect(stored).toEqual(failed);
  const result = totals(failed, LIVE);
  for (const [name, rows] of days) {
    const step = result.steps.find((s) => s.partition === name)!;
    expect(await tableExists(name)).toBe(!step.done);
    expect(Number(step.rows)).toBe(step.done ? rows : 0);
  }
  return result;
}

describe('no archive, no hold: whole partitions dropped beside the run, the partial day trimmed', () => {
  it('removes exactly the rows past the cutoff, counts each partition exactly, and records what the dry run predicted', async () => {
    const days = await fillDays(40, 55, (d) => 50 + d);
    // The partition holding the cutoff: 230 rows before it (within its day) are trimmed, 60 after it stay.
    const cutoff = daysAgo(30).getTime();
    const partialFrom = Math.max(cutoff - 100 * MINUTE_MS, Math.floor(cutoff / DAY_MS) * DAY_MS);
    for (const at of [cutoff, cutoff + 10 * MINUTE_MS, cutoff + 50 * MINUTE_MS]) await ensurePartition(new Date(at));
    await insertConnectionLogs(h.pg, fx.connectionId, new Date(partialFrom), new Date(cutoff - 1000), 230);
    await insertConnectionLogs(h.pg, fx.connectionId, new Date(cutoff + 10 * MINUTE_MS), new Date(cutoff + 50 * MINUTE_MS), 60);
    const { rows: before } = await h.pg.query(`SELECT id, timestamp FROM ${LIVE}`);

    const dry = await run(true);
    const real = await run();
    expect(real.status).toBe(RunStatus.RUN_STATUS_SUCCEEDED);
    const result = totals(real, LIVE);
    expect(outcome(result)).toEqual(outcome(totals(dry, LIVE)));
    expect(rowsByPartition(result, StepAction.STEP_ACTION_DROP_PARTITION)).toEqual(days);
    const trimmed = [...rowsByPartition(result, StepAction.STEP_ACTION_TRIM_ROWS).values()].reduce((a, b) => a + b, 0);
    expect(trimmed).toBe(230);
    expect(result).toMatchObject({ rowsDeleted: String([...days.values()].reduce((a, b) => a + b, 0) + 230), rowsArchived: '0', heldRows: '0' });
    expect(result.steps.every((s) => s.done)).toBe(true);

    // Exactly the rows past the run's cutoff are gone; the dropped partitions exist neither attached nor detached.
    const runCutoff = result.cutoff!.getTime();
    const kept = before.filter((r) => r.timestamp.getTime() >= runCutoff).map((r) => r.id).sort();
    const { rows: live } = await h.pg.query(`SELECT id FROM ${LIVE} ORDER BY id`);
    expect(live.map((r) => r.id)).toEqual(kept);
    for (const name of days.keys()) expect(await tableExists(name)).toBe(false);
    expect(await count(h.pg, ARCHIVE)).toBe(0);

    // What the lanes and the trim each committed on their own connections is all in the stored record.
    const { run: stored } = await h.call('getRun', { id: real.id });
    expect(stored).toEqual(real);
  });

  it('drops at most three partitions per transaction, on at most three connections, even when the detaches outrun the drops', async () => {
    const days = await fillDays(90, 101, () => 5);
    // Records each dropped partition with its transaction, and holds every drop 100 ms, so the
    // detaches (a few ms each) pile up partitions while the lanes are busy.
    await h.pg.query(`
      CREATE TABLE drops_test_log (xid text NOT NULL, pid int NOT NULL, name text NOT NULL);
      CREATE FUNCTION drops_test_record() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
        BEGIN
          INSERT INTO drops_test_log SELECT pg_current_xact_id()::text, pg_backend_pid(), object_name
            FROM pg_event_trigger_dropped_objects() WHERE object_type = 'table' AND object_name LIKE '${LIVE}_p%';
          -- Not for the run's other DDL (dropping foreign keys fires this too): that must stay fast.
          IF FOUND THEN PERFORM pg_sleep(0.1); END IF;
        END $$;
      CREATE EVENT TRIGGER drops_test_record ON sql_drop EXECUTE FUNCTION drops_test_record();`);
    try {
      const real = await run();
      expect(real.status).toBe(RunStatus.RUN_STATUS_SUCCEEDED);
      expect(rowsByPartition(totals(real, LIVE), StepAction.STEP_ACTION_DROP_PARTITION)).toEqual(days);
      const { rows } = await h.pg.query(
        'SELECT xid, pid, array_agg(name ORDER BY name) AS names FROM drops_test_log GROUP BY xid, pid',
      );
      expect(rows.flatMap((r) => r.names).sort()).toEqual([...days.keys()].sort());
      expect(Math.max(...rows.map((r) => r.names.length))).toBeLessThanOrEqual(3);
      expect(new Set(rows.map((r) => r.pid)).size).toBeLessThanOrEqual(3);
    } finally {
      await h.pg.query('DROP EVENT TRIGGER drops_test_record; DROP FUNCTION drops_test_record(); DROP TABLE drops_test_log');
    }
  });

  it('finishes partitions an interrupted run left detached, with or without their foreign keys', async () => {
    const days = await fillDays(60, 61, (d) => 10 + d);
    const [withKeys, withoutKeys] = [...days.keys()];
    await detach(withKeys);
    await detach(withoutKeys);
    // As a run stopped between dropping the foreign keys and dropping the table leaves it.
    const { rows: fks } = await h.pg.query(`SELECT conname FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'f'`, [withoutKeys]);
    expect(fks.length).toBeGreaterThan(0);
    for (const { conname } of fks) await h.pg.query(`ALTER TABLE ${withoutKeys} DROP CONSTRAINT ${conname}`);

    const dry = await run(true);
    const real = await run();
    expect(real.status).toBe(RunStatus.RUN_STATUS_SUCCEEDED);
    expect(outcome(totals(real, LIVE))).toEqual(outcome(totals(dry, LIVE)));
    expect(rowsByPartition(totals(real, LIVE), StepAction.STEP_ACTION_FINISH_DETACHED)).toEqual(days);
    for (const name of days.keys()) expect(await tableExists(name)).toBe(false);
  });

  it('a drop that fails fails the run; what committed is counted, and the next run finishes the rest', async () => {
    const days = await fillDays(70, 79, (d) => d);
    // The newest of them, dropped last. A view on it makes DROP TABLE fail (dependent objects).
    const blocked = [...days.keys()][0];
    await h.pg.query(`CREATE VIEW drops_test_view AS SELECT id FROM ${blocked}`);

    // "cannot drop table …" or, with others in the same DROP, "cannot drop desired object(s) …".
    // Every step marked done dropped its partition; every other partition still exists, attached or detached.
    const first = await expectFailedRun(await run(), 'because other objects depend on', days);
    const droppedFirst = rowsByPartition(first, StepAction.STEP_ACTION_DROP_PARTITION);
    expect(first.steps.find((s) => s.partition === blocked)!.done).toBe(false);

    await h.pg.query('DROP VIEW drops_test_view');
    const finished = await run();
    expect(finished.status).toBe(RunStatus.RUN_STATUS_SUCCEEDED);
    const second = totals(finished, LIVE);
    for (const [name, rows] of days) {
      const now = second.steps.find((s) => s.partition === name);
      expect((droppedFirst.get(name) ?? 0) + Number(now?.rows ?? 0)).toBe(rows);
      expect(await tableExists(name)).toBe(false);
    }
    expect(await count(h.pg, `${LIVE} WHERE timestamp < $1`, [second.cutoff])).toBe(0);
  });

  it('a trim that fails fails the run; the drops committed beside it are counted, and the next run finishes the trim', async () => {
    const days = await fillDays(85, 88, (d) => d);
    const cutoff = daysAgo(30).getTime();
    const partial = await ensurePartition(new Date(cutoff));
    await insertConnectionLogs(h.pg, fx.connectionId, new Date(Math.max(cutoff - 60 * MINUTE_MS, Math.floor(cutoff / DAY_MS) * DAY_MS)), new Date(cutoff - 1000), 20);
    await h.pg.query(`CREATE FUNCTION drops_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'trim refused by the test'; END $$`);
    await h.pg.query(`CREATE TRIGGER drops_test_refuse BEFORE DELETE ON ${partial} FOR EACH ROW EXECUTE FUNCTION drops_test_refuse()`);

    const first = await expectFailedRun(await run(), 'trim refused by the test', days);
    const trim = first.steps.find((s) => s.action === StepAction.STEP_ACTION_TRIM_ROWS)!;
    expect(trim).toMatchObject({ partition: partial, rows: '0', done: false });

    await h.pg.query(`DROP TRIGGER drops_test_refuse ON ${partial}`);
    await h.pg.query('DROP FUNCTION drops_test_refuse()');
    const finished = await run();
    expect(finished.status).toBe(RunStatus.RUN_STATUS_SUCCEEDED);
    expect(rowsByPartition(totals(finished, LIVE), StepAction.STEP_ACTION_TRIM_ROWS).get(partial)).toBe(20);
    for (const name of days.keys()) expect(await tableExists(name)).toBe(false);
    expect(await count(h.pg, `${LIVE} WHERE timestamp < $1`, [totals(finished, LIVE).cutoff])).toBe(0);
  });
});

describe('progress of one run written from two connections', () => {
  it('an UPDATE that waited for the other connection keeps the step that one wrote', async () => {
    const repository = new RetentionRepository();
    const step = (partition: string): StepRecord => ({ action: 'drop_partition', partition, rangeStart: null, rangeEnd: null, rows: 0, heldRows: 0, done: false });
    const record: TableRecord = {
      table: LIVE,
      status: 'running',
      error: null,
      cutoff: new Date().toISOString(),
      archiveCutoff: null,
      archiveBeforeDelete: false,
      steps: [step('a'), step('b')],
    };
    const id = randomUUID();
    await h.pg.query(
      `INSERT INTO retention_runs (id, policy, dry_run, status, requested_by, results) VALUES ($1, $2, false, 'running', $3, $4)`,
      [id, LIVE, fx.userId, JSON.stringify({ [LIVE]: record })],
    );
    const [first, second] = [h.service.dataSource.createQueryRunner(), h.service.dataSource.createQueryRunner()];
    try {
      await first.startTransaction();
      await repository.saveSteps(first, id, LIVE, [{ index: 0, step: { ...step('a'), rows: 7, done: true } }]);
      await second.startTransaction();
      const waiting = repository.saveSteps(second, id, LIVE, [{ index: 1, step: { ...step('b'), rows: 9, done: true } }]);
      let blocked = false;
      for (let i = 0; i < 500 && !blocked; i++) {
        const { rows } = await h.pg.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE retention_runs%'`);
        blocked = rows.length > 0;
        if (!blocked) await new Promise((r) => setTimeout(r, 10));
      }
      expect(blocked).toBe(true); // the second UPDATE waits for the first one's row lock
      await first.commitTransaction();
      await waiting;
      await second.commitTransaction();
    } finally {
      await first.release();
      await second.release();
    }
    const { rows } = await h.pg.query(`SELECT results->$2->'steps' AS steps FROM retention_runs WHERE id = $1`, [id, LIVE]);
    expect(rows[0].steps.map((s: StepRecord) => [s.partition, s.rows, s.done])).toEqual([
      ['a', 7, true],
      ['b', 9, true],
    ]);
  });
});

describe("WAL compression of a run's transactions", () => {
  it('is used only where the server does not compress already and the role may set it', async () => {
    const role = `retention_wal_${randomUUID().slice(0, 8)}`;
    const q = h.service.dataSource.createQueryRunner();
    await h.pg.query(`CREATE ROLE ${role} NOLOGIN`);
    try {
      await q.query('SET wal_compression = off');
      const [{ methods }] = await q.query(`SELECT enumvals AS methods FROM pg_settings WHERE name = 'wal_compression'`);
      const method = await walCompressionFor(q); // the tests connect as a superuser
      expect(method).toBe(['zstd', 'lz4', 'pglz'].find((m) => methods.includes(m)));
      await q.query(`SET wal_compression = ${method}`);
      expect(await walCompressionFor(q)).toBeNull();
      await q.query('SET wal_compression = off');

      await q.query(`SET ROLE ${role}`);
      expect(await walCompressionFor(q)).toBeNull();
      await h.pg.query(`GRANT SET ON PARAMETER wal_compression TO ${role}`);
      expect(await walCompressionFor(q)).toBe(method);
      // What a run's transactions then do, as that role.
      await q.query(`SELECT set_config('wal_compression', $1, false)`, [method]);
    } finally {
      await q.query('RESET ROLE; RESET wal_compression').catch(() => undefined);
      await q.release();
      await h.pg.query(`REVOKE SET ON PARAMETER wal_compression FROM ${role}`);
      await h.pg.query(`DROP ROLE ${role}`);
    }
  });
});
