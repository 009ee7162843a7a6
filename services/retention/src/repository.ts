import { exactTimestamp } from '@mcp/runtime';
import type { QueryRunner } from 'typeorm';
import type { RunStatus, StepRecord, TableRecord } from './records';
import type { TableName } from './tables';

export interface Policy {
  table: TableName;
  hotDays: number;
  archiveBeforeDelete: boolean;
  archiveDays: number | null;
  enabled: boolean;
  expectedIntervalHours: number;
  updatedBy: string | null;
  updatedAt: Date;
}

/** Audit archive: days after its time an archived row expires (hot window plus archive window; null = never). */
export function keepDays(policy: Policy): number | null {
  return policy.archiveDays === null ? null : policy.hotDays + policy.archiveDays;
}

export interface PolicyStatus extends Policy {
  lastSucceededAt: Date | null;
  overdue: boolean;
}

export interface RunRow {
  id: string;
  policy: string;
  dryRun: boolean;
  status: RunStatus;
  requestedBy: string | null;
  startedAt: Date;
  finishedAt: Date | null;
  results: Partial<Record<TableName, TableRecord>>;
  error: string | null;
}

export type HoldSubject = 'user' | 'server' | 'agent' | 'time_range';

export interface HoldRow {
  id: string;
  subjectType: HoldSubject;
  subjectId: string | null;
  startsAt: Date | null;
  endsAt: Date | null;
  reason: string;
  placedBy: string;
  placedAt: Date;
  releasedAt: Date | null;
  releasedBy: string | null;
  releaseReason: string | null;
}

export interface Cursor {
  at: string;
  id: string;
}

const POLICY_COLUMNS = `table_name AS "table", hot_days AS "hotDays", archive_before_delete AS "archiveBeforeDelete",
  archive_days AS "archiveDays", enabled, expected_interval_hours AS "expectedIntervalHours",
  updated_by AS "updatedBy", updated_at AS "updatedAt"`;

const RUN_COLUMNS = `id, policy, dry_run AS "dryRun", status, requested_by AS "requestedBy", started_at AS "startedAt",
  finished_at AS "finishedAt", results, error,
  ${exactTimestamp('started_at')} AS cursor_at`;

const HOLD_COLUMNS = `id, subject_type AS "subjectType", subject_id AS "subjectId", starts_at AS "startsAt", ends_at AS "endsAt",
  reason, placed_by AS "placedBy", placed_at AS "placedAt", released_at AS "releasedAt", released_by AS "releasedBy",
  release_reason AS "releaseReason", ${exactTimestamp('placed_at')} AS cursor_at`;

/** Last success of each table: the newest real run that finished with that table succeeded. */
const LAST_SUCCESS = `SELECT max(r.finished_at) FROM retention_runs r
  WHERE NOT r.dry_run AND r.results -> p.table_name ->> 'status' = 'succeeded'`;

export class RetentionRepository {
  async policies(q: QueryRunner): Promise<PolicyStatus[]> {
    return q.query(
      `SELECT ${POLICY_COLUMNS}, s.last AS "lastSucceededAt",
              p.enabled AND coalesce(s.last, p.updated_at) < now() - make_interval(hours => p.expected_interval_hours) AS overdue
         FROM retention_policies p, LATERAL (${LAST_SUCCESS}) s(last)
        ORDER BY p.table_name`,
    );
  }

  async policy(q: QueryRunner, table: TableName): Promise<PolicyStatus | undefined> {
    return (await this.policies(q)).find((p) => p.table === table);
  }

  async upsertPolicy(q: QueryRunner, p: Omit<Policy, 'updatedAt'>): Promise<void> {
    await q.query(
      `INSERT INTO retention_policies (table_name, hot_days, archive_before_delete, archive_days, enabled,
         expected_interval_hours, updated_by, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, now())
       ON CONFLICT (table_name) DO UPDATE SET hot_days = EXCLUDED.hot_days,
         archive_before_delete = EXCLUDED.archive_before_delete, archive_days = EXCLUDED.archive_days,
         enabled = EXCLUDED.enabled, expected_interval_hours = EXCLUDED.expected_interval_hours,
         updated_by = EXCLUDED.updated_by, updated_at = now()`,
      [p.table, p.hotDays, p.archiveBeforeDelete, p.archiveDays, p.enabled, p.expectedIntervalHours, p.updatedBy],
    );
  }

  // ------------------------------------------------------------------ runs

  async insertRun(q: QueryRunner, run: Pick<RunRow, 'id' | 'policy' | 'dryRun' | 'status' | 'requestedBy' | 'results'>): Promise<void> {
    await q.query(
      `INSERT INTO retention_runs (id, policy, dry_run, status, requested_by, results, finished_at)
       VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $4 = 'running' THEN NULL ELSE now() END)`,
      [run.id, run.policy, run.dryRun, run.status, run.requestedBy, JSON.stringify(run.results)],
    );
  }

  async saveTable(q: QueryRunner, runId: string, record: TableRecord): Promise<void> {
    await q.query(`UPDATE retention_runs SET results = jsonb_set(results, ARRAY[$2], $3::jsonb) WHERE id = $1`, [
      runId,
      record.table,
      JSON.stringify(record),
    ]);
  }

  /**
   * Writes only the given steps of a table's record: other connections of the
   * same run may be advancing other steps at the same time, and an UPDATE that
   * waited for theirs applies its jsonb_set to the row they committed.
   */
  async saveSteps(q: QueryRunner, runId: string, table: TableName, steps: Array<{ index: number; step: StepRecord }>): Promise<void> {
    const params: unknown[] = [runId];
    let results = 'results';
    for (const { index, step } of steps) {
      params.push([table, 'steps', String(index)], JSON.stringify(step));
      results = `jsonb_set(${results}, $${params.length - 1}::text[], $${params.length}::jsonb)`;
    }
    await q.query(`UPDATE retention_runs SET results = ${results} WHERE id = $1`, params);
  }

  async finishRun(q: QueryRunner, runId: string, status: RunStatus, error: string | null): Promise<void> {
    await q.query(`UPDATE retention_runs SET status = $2, error = $3, finished_at = now() WHERE id = $1`, [runId, status, error]);
  }

  /** Real runs still marked running. Called under the run lock, so none of them is actually running. */
  async interruptedRuns(q: QueryRunner): Promise<string[]> {
    const rows: { id: string }[] = await q.query(
      `SELECT id FROM retention_runs WHERE status = 'running' AND NOT dry_run ORDER BY started_at FOR UPDATE`,
    );
    return rows.map((r) => r.id);
  }

  /** The newest run marked running (for telling a second caller which run holds the lock). */
  async runningRunId(q: QueryRunner): Promise<string | undefined> {
    const [row] = await q.query(`SELECT id FROM retention_runs WHERE status = 'running' ORDER BY started_at DESC LIMIT 1`);
    return row?.id;
  }

  async run(q: QueryRunner, id: string): Promise<RunRow | undefined> {
    const [row] = await q.query(`SELECT ${RUN_COLUMNS} FROM retention_runs WHERE id = $1`, [id]);
    return row;
  }

  /** Newest first, strictly after `cursor`. */
  async runs(q: QueryRunner, cursor: Cursor | undefined, limit: number): Promise<Array<RunRow & { cursor_at: string }>> {
    return q.query(
      `SELECT ${RUN_COLUMNS} FROM retention_runs
        WHERE $1::timestamptz IS NULL OR (started_at, id) < ($1::timestamptz, $2::uuid)
        ORDER BY started_at DESC, id DESC LIMIT $3`,
      [cursor?.at ?? null, cursor?.id ?? null, limit],
    );
  }

  async writeSystemLog(q: QueryRunner, details: string, metadata: object): Promise<void> {
    await q.query(`INSERT INTO system_logs (operation, details, metadata) VALUES ('retention_run', $1, $2)`, [
      details,
      JSON.stringify(metadata),
    ]);
  }

  // ------------------------------------------------------------------ legal holds

  async holdsActive(q: QueryRunner): Promise<boolean> {
    const [row] = await q.query('SELECT EXISTS (SELECT 1 FROM legal_holds WHERE released_at IS NULL) AS active');
    return row.active;
  }

  /**
   * Taken by every step that removes rows, and conflicting with placing a
   * hold: a hold placed while a step runs takes effect after the step
   * committed, never in the middle of it.
   */
  async lockHolds(q: QueryRunner): Promise<void> {
    await q.query('LOCK TABLE legal_holds IN SHARE MODE');
  }

  async subjectExists(q: QueryRunner, subject: Exclude<HoldSubject, 'time_range'>, id: string): Promise<boolean> {
    const table = { user: 'users', server: 'mcp_servers', agent: 'agents' }[subject];
    const rows = await q.query(`SELECT 1 FROM ${table} WHERE id = $1`, [id]);
    return rows.length > 0;
  }

  async insertHold(q: QueryRunner, h: Omit<HoldRow, 'placedAt' | 'releasedAt' | 'releasedBy' | 'releaseReason'>): Promise<HoldRow> {
    const [row] = await q.query(
      `INSERT INTO legal_holds (id, subject_type, subject_id, starts_at, ends_at, reason, placed_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${HOLD_COLUMNS}`,
      [h.id, h.subjectType, h.subjectId, h.startsAt, h.endsAt, h.reason, h.placedBy],
    );
    return row;
  }

  async holdForUpdate(q: QueryRunner, id: string): Promise<HoldRow | undefined> {
    const [row] = await q.query(`SELECT ${HOLD_COLUMNS} FROM legal_holds WHERE id = $1 FOR UPDATE`, [id]);
    return row;
  }

  async releaseHold(q: QueryRunner, id: string, by: string, reason: string | null): Promise<HoldRow> {
    const [[row]] = await q.query(
      `UPDATE legal_holds SET released_at = now(), released_by = $2, release_reason = $3 WHERE id = $1 RETURNING ${HOLD_COLUMNS}`,
      [id, by, reason],
    );
    return row;
  }

  async holds(q: QueryRunner, includeReleased: boolean, cursor: Cursor | undefined, limit: number): Promise<Array<HoldRow & { cursor_at: string }>> {
    return q.query(
      `SELECT ${HOLD_COLUMNS} FROM legal_holds
        WHERE ($1 OR released_at IS NULL)
          AND ($2::timestamptz IS NULL OR (placed_at, id) < ($2::timestamptz, $3::uuid))
        ORDER BY placed_at DESC, id DESC LIMIT $4`,
      [includeReleased, cursor?.at ?? null, cursor?.id ?? null, limit],
    );
  }
}
