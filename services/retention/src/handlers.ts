import { retention } from '@mcp/proto';
import {
  decodePageToken,
  encodePageToken,
  inTransaction,
  NotFoundError,
  pageSize,
  recordAudit,
  Violations,
  type CallContext,
  type Redactor,
} from '@mcp/runtime';
import type { DataSource } from 'typeorm';
import type { LegalHolds } from './holds';
import { tableTotals, type RunStatus, type StepAction, type StepRecord, type TableRecord } from './records';
import type { Cursor, HoldRow, HoldSubject, PolicyStatus, RetentionRepository, RunRow } from './repository';
import type { RetentionRuns } from './runs';
import { isTableName, TABLE_NAMES } from './tables';

const { HoldSubjectType, RunStatus: RunStatusMessage, StepAction: StepActionMessage } = retention;

const MAX_DAYS = 36_500;
const MAX_INTERVAL_HOURS = 8_784;
const DEFAULT_INTERVAL_HOURS = 26;

const SUBJECT_FROM_MESSAGE = new Map<retention.HoldSubjectType, HoldSubject>([
  [HoldSubjectType.HOLD_SUBJECT_TYPE_USER, 'user'],
  [HoldSubjectType.HOLD_SUBJECT_TYPE_SERVER, 'server'],
  [HoldSubjectType.HOLD_SUBJECT_TYPE_AGENT, 'agent'],
  [HoldSubjectType.HOLD_SUBJECT_TYPE_TIME_RANGE, 'time_range'],
]);
const SUBJECT_TO_MESSAGE = new Map([...SUBJECT_FROM_MESSAGE].map(([k, v]) => [v, k]));

const STATUS_TO_MESSAGE: Record<RunStatus, retention.RunStatus> = {
  running: RunStatusMessage.RUN_STATUS_RUNNING,
  succeeded: RunStatusMessage.RUN_STATUS_SUCCEEDED,
  failed: RunStatusMessage.RUN_STATUS_FAILED,
};

const ACTION_TO_MESSAGE: Record<StepAction, retention.StepAction> = {
  create_partition: StepActionMessage.STEP_ACTION_CREATE_PARTITION,
  drain_default: StepActionMessage.STEP_ACTION_DRAIN_DEFAULT,
  archive_partition: StepActionMessage.STEP_ACTION_ARCHIVE_PARTITION,
  drop_partition: StepActionMessage.STEP_ACTION_DROP_PARTITION,
  trim_rows: StepActionMessage.STEP_ACTION_TRIM_ROWS,
  expire_archive_partition: StepActionMessage.STEP_ACTION_EXPIRE_ARCHIVE_PARTITION,
  expire_archive_rows: StepActionMessage.STEP_ACTION_EXPIRE_ARCHIVE_ROWS,
  finish_detached: StepActionMessage.STEP_ACTION_FINISH_DETACHED,
};

export interface RetentionHandlerDeps {
  dataSource: DataSource;
  repository: RetentionRepository;
  runs: RetentionRuns;
  holds: LegalHolds;
  redactor: Redactor;
}

/** Proto <-> domain and input validation for every RPC of mcp.retention.v1.RetentionService. */
export class RetentionHandlers {
  constructor(private readonly deps: RetentionHandlerDeps) {}

  async runRetention(req: retention.RunRetentionRequest, ctx: CallContext): Promise<retention.RunRetentionResponse> {
    const v = new Violations();
    const policy = v.text('policy', req.policy, { required: true, maxLength: 100 });
    v.throwIfAny();
    const run = await this.deps.runs.run(policy!, req.dryRun, ctx);
    return { run: toRunMessage(run) };
  }

  async listRuns(req: retention.ListRunsRequest, ctx: CallContext): Promise<retention.ListRunsResponse> {
    const scope = { rpc: 'ListRuns' };
    const cursor = req.pageToken ? decodePageToken<Cursor>(req.pageToken, scope) : undefined;
    const size = pageSize(req.pageSize);
    const { rows, policies } = await inTransaction(this.deps.dataSource, ctx, async (q) => ({
      rows: await this.deps.repository.runs(q, cursor, size + 1),
      policies: await this.deps.repository.policies(q),
    }));
    const page = rows.slice(0, size);
    const last = page[page.length - 1];
    return {
      runs: page.map(toRunMessage),
      nextPageToken: rows.length > size && last ? encodePageToken({ at: last.cursor_at, id: last.id }, scope) : '',
      overdue: policies
        .filter((p) => p.overdue)
        .map((p) => ({ table: p.table, expectedIntervalHours: p.expectedIntervalHours, lastSucceededAt: p.lastSucceededAt ?? undefined })),
    };
  }

  async getRun(req: retention.GetRunRequest, ctx: CallContext): Promise<retention.GetRunResponse> {
    const v = new Violations();
    const id = v.uuid('id', req.id, true);
    v.throwIfAny();
    const run = await inTransaction(this.deps.dataSource, ctx, (q) => this.deps.repository.run(q, id!));
    if (!run) throw new NotFoundError(`id: no retention run ${id}`);
    return { run: toRunMessage(run) };
  }

  async listPolicies(_req: retention.ListPoliciesRequest, ctx: CallContext): Promise<retention.ListPoliciesResponse> {
    const policies = await inTransaction(this.deps.dataSource, ctx, (q) => this.deps.repository.policies(q));
    return { policies: policies.map(toPolicyMessage) };
  }

  async upsertPolicy(req: retention.UpsertPolicyRequest, ctx: CallContext): Promise<retention.UpsertPolicyResponse> {
    const v = new Violations();
    const p = req.policy;
    if (!p) v.add('policy', 'required');
    if (p && !isTableName(p.table)) {
      v.add('policy.table', p.table === '' ? 'required' : `unknown table ${JSON.stringify(p.table)}; one of ${TABLE_NAMES.join(', ')}`);
    }
    const hotDays = v.integer('policy.hot_days', p?.hotDays ?? 0, 1, MAX_DAYS);
    const archiveDays = v.integer('policy.archive_days', p?.archiveDays, 1, MAX_DAYS);
    const interval = v.integer('policy.expected_interval_hours', p?.expectedIntervalHours || DEFAULT_INTERVAL_HOURS, 1, MAX_INTERVAL_HOURS);
    v.throwIfAny();
    const table = p!.table as (typeof TABLE_NAMES)[number];
    const updated = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      const before = await this.deps.repository.policy(q, table);
      await this.deps.repository.upsertPolicy(q, {
        table,
        hotDays: hotDays!,
        archiveBeforeDelete: p!.archiveBeforeDelete,
        archiveDays: archiveDays ?? null,
        enabled: p!.enabled,
        expectedIntervalHours: interval!,
        updatedBy: ctx.principal.userId,
      });
      const after = (await this.deps.repository.policy(q, table))!;
      await recordAudit(
        q,
        ctx,
        {
          action: 'retention_policy.upsert',
          resourceType: 'retention_policy',
          resourceId: table,
          requestData: { before: before && policyData(before), after: policyData(after) },
        },
        this.deps.redactor,
      );
      return after;
    });
    return { policy: toPolicyMessage(updated) };
  }

  async placeLegalHold(req: retention.PlaceLegalHoldRequest, ctx: CallContext): Promise<retention.PlaceLegalHoldResponse> {
    const v = new Violations();
    const subjectType = v.enumValue('subject_type', req.subjectType, SUBJECT_FROM_MESSAGE);
    const subjectId =
      subjectType === 'time_range'
        ? req.subjectId
          ? (v.add('subject_id', 'must be empty for a time range hold'), undefined)
          : undefined
        : v.uuid('subject_id', req.subjectId, subjectType !== undefined);
    const startsAt = v.timestamp('start_time', req.startTime, new Date(0), new Date(Date.UTC(9999, 0)));
    const endsAt = v.timestamp('end_time', req.endTime, new Date(0), new Date(Date.UTC(9999, 0)));
    if (subjectType === 'time_range' && !req.startTime && !req.endTime) v.add('start_time', 'a time range hold needs start_time, end_time or both');
    if (startsAt && endsAt && endsAt.getTime() <= startsAt.getTime()) v.add('end_time', 'must be after start_time');
    const reason = v.text('reason', req.reason, { required: true, maxLength: 2000 });
    v.throwIfAny();
    const hold = await this.deps.holds.place(
      { subjectType: subjectType!, subjectId: subjectId ?? null, startsAt: startsAt ?? null, endsAt: endsAt ?? null, reason: reason! },
      ctx,
    );
    return { hold: toHoldMessage(hold) };
  }

  async releaseLegalHold(req: retention.ReleaseLegalHoldRequest, ctx: CallContext): Promise<retention.ReleaseLegalHoldResponse> {
    const v = new Violations();
    const id = v.uuid('id', req.id, true);
    const reason = v.text('reason', req.reason, { maxLength: 2000 });
    v.throwIfAny();
    return { hold: toHoldMessage(await this.deps.holds.release(id!, reason || null, ctx)) };
  }

  async listLegalHolds(req: retention.ListLegalHoldsRequest, ctx: CallContext): Promise<retention.ListLegalHoldsResponse> {
    const scope = { rpc: 'ListLegalHolds', includeReleased: req.includeReleased };
    const cursor = req.pageToken ? decodePageToken<Cursor>(req.pageToken, scope) : undefined;
    const size = pageSize(req.pageSize);
    const rows = await inTransaction(this.deps.dataSource, ctx, (q) => this.deps.repository.holds(q, req.includeReleased, cursor, size + 1));
    const page = rows.slice(0, size);
    const last = page[page.length - 1];
    return {
      holds: page.map(toHoldMessage),
      nextPageToken: rows.length > size && last ? encodePageToken({ at: last.cursor_at, id: last.id }, scope) : '',
    };
  }
}

function policyData(p: PolicyStatus): object {
  return {
    hot_days: p.hotDays,
    archive_before_delete: p.archiveBeforeDelete,
    archive_days: p.archiveDays,
    enabled: p.enabled,
    expected_interval_hours: p.expectedIntervalHours,
  };
}

function toPolicyMessage(p: PolicyStatus): retention.Policy {
  return {
    table: p.table,
    hotDays: p.hotDays,
    archiveBeforeDelete: p.archiveBeforeDelete,
    archiveDays: p.archiveDays ?? undefined,
    enabled: p.enabled,
    expectedIntervalHours: p.expectedIntervalHours,
    lastSucceededAt: p.lastSucceededAt ?? undefined,
    overdue: p.overdue,
    updatedAt: p.updatedAt,
    updatedBy: p.updatedBy ?? '',
  };
}

function toStepMessage(s: StepRecord): retention.Step {
  return {
    action: ACTION_TO_MESSAGE[s.action],
    partition: s.partition,
    rangeStart: s.rangeStart ? new Date(s.rangeStart) : undefined,
    rangeEnd: s.rangeEnd ? new Date(s.rangeEnd) : undefined,
    rows: String(s.rows),
    heldRows: String(s.heldRows),
    done: s.done,
  };
}

function toTableMessage(r: TableRecord, dryRun: boolean): retention.TableResult {
  const t = tableTotals(r, dryRun);
  return {
    table: r.table,
    status: STATUS_TO_MESSAGE[r.status],
    error: r.error ?? '',
    cutoff: r.cutoff ? new Date(r.cutoff) : undefined,
    archiveCutoff: r.archiveCutoff ? new Date(r.archiveCutoff) : undefined,
    rowsArchived: String(t.rowsArchived),
    rowsDeleted: String(t.rowsDeleted),
    archiveRowsExpired: String(t.archiveRowsExpired),
    heldRows: String(t.heldRows),
    rowsDrained: String(t.rowsDrained),
    partitionsCreated: t.partitionsCreated,
    steps: r.steps.map(toStepMessage),
  };
}

export function toRunMessage(run: RunRow): retention.Run {
  return {
    id: run.id,
    policy: run.policy,
    dryRun: run.dryRun,
    status: STATUS_TO_MESSAGE[run.status],
    startedAt: run.startedAt,
    finishedAt: run.finishedAt ?? undefined,
    requestedBy: run.requestedBy ?? '',
    tables: TABLE_NAMES.flatMap((t) => (run.results[t] ? [toTableMessage(run.results[t]!, run.dryRun)] : [])),
    error: run.error ?? '',
  };
}

function toHoldMessage(h: HoldRow): retention.LegalHold {
  return {
    id: h.id,
    subjectType: SUBJECT_TO_MESSAGE.get(h.subjectType)!,
    subjectId: h.subjectId ?? '',
    startTime: h.startsAt ?? undefined,
    endTime: h.endsAt ?? undefined,
    reason: h.reason,
    placedBy: h.placedBy,
    placedAt: h.placedAt,
    releasedAt: h.releasedAt ?? undefined,
    releasedBy: h.releasedBy ?? '',
    releaseReason: h.releaseReason ?? '',
  };
}
