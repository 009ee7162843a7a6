import { statussync } from '@mcp/proto';
import { trace } from '@opentelemetry/api';
import {
  decodePageToken,
  encodePageToken,
  FailedPreconditionError,
  inTransaction,
  NotFoundError,
  pageSize,
  PermissionDeniedError,
  platformMetrics,
  recordAudit,
  runStatement,
  uuidv7,
  Violations,
  type CallContext,
  type Redactor,
  type ServerStreamWriter,
} from '@mcp/runtime';
import type { DataSource, QueryRunner } from 'typeorm';
import type { StatusReporter } from './reports';
import type {
  EnvironmentRow,
  HeartbeatOutcome,
  RegistryRepository,
  ServerRow,
  StatusLogRow,
  StatusRepository,
  SteadyBeat,
  TimeCursor,
} from './repository';
import {
  boundedNumber,
  ENVIRONMENT_TYPE,
  HEALTH,
  INT32_MAX,
  parseHeartbeat,
  parseHeartbeatBatch,
  parseReports,
  RESTART_POLICY,
  SOURCE,
  STATE,
  STATUS_LOG_TABLE,
  TRANSPORT,
  type HeartbeatInput,
  type ReportLimits,
} from './status';
import type { StatusWatch } from './watch';

export interface StatusSyncHandlerDeps {
  dataSource: DataSource;
  redactor: Redactor;
  status: StatusRepository;
  registry: RegistryRepository;
  reporter: StatusReporter;
  watch: StatusWatch;
  limits: ReportLimits;
  /** Heartbeats also write a history row when the server's last one is this old; 0 = only on transitions. */
  heartbeatSnapshotIntervalSeconds: number;
}

const MAX_LOOKBACK_HOURS = 24 * 366;
/** The seed view server_health_history covers 7 days. */
const HEALTH_HISTORY_HOURS = 7 * 24;
const JSON_SETTINGS = { maxBytes: 64 * 1024, maxDepth: 32 };

/** Proto <-> domain for every RPC of mcp.statussync.v1.StatusSyncService. */
export class StatusSyncHandlers {
  constructor(private readonly deps: StatusSyncHandlerDeps) {}

  async upsertEnvironment(req: statussync.UpsertEnvironmentRequest, ctx: CallContext): Promise<statussync.UpsertEnvironmentResponse> {
    const v = new Violations();
    const e = req.environment;
    if (!e) v.add('environment', 'required');
    const id = v.uuid('environment.id', e?.id) ?? uuidv7();
    const name = v.text('environment.name', e?.name, { required: true, maxLength: 200 });
    const description = v.text('environment.description', e?.description, { maxLength: 2000 });
    const environmentType =
      e?.environmentType === statussync.EnvironmentType.ENVIRONMENT_TYPE_UNSPECIFIED
        ? 'DEVELOPMENT'
        : v.enumValue('environment.environment_type', e?.environmentType ?? 0, ENVIRONMENT_TYPE.toDb);
    const config = jsonObject(v, 'environment.config', e?.config);
    const resourceLimits = jsonObject(v, 'environment.resource_limits', e?.resourceLimits);
    const windowStart = validDate(v, 'environment.maintenance_window_start', e?.maintenanceWindowStart);
    const windowEnd = validDate(v, 'environment.maintenance_window_end', e?.maintenanceWindowEnd);
    if (windowEnd && !windowStart) v.add('environment.maintenance_window_start', 'required when maintenance_window_end is set');
    if (windowStart && windowEnd && windowEnd.getTime() <= windowStart.getTime()) {
      v.add('environment.maintenance_window_end', 'must be after maintenance_window_start');
    }
    const version = v.text('environment.current_deployment_version', e?.currentDeploymentVersion, { maxLength: 200 });
    v.throwIfAny();
    const row = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      const saved = await this.deps.registry.upsertEnvironment(q, {
        id,
        name: name!,
        description: description || null,
        environment_type: environmentType!,
        config,
        resource_limits: resourceLimits,
        maintenance_window_start: windowStart ?? null,
        maintenance_window_end: windowEnd ?? null,
        current_deployment_version: version || null,
        is_active: e!.isActive,
      });
      await recordAudit(
        q,
        ctx,
        { action: saved.created ? 'environment.create' : 'environment.update', resourceType: 'environment', resourceId: saved.id, requestData: req },
        this.deps.redactor,
      );
      return saved;
    });
    return { environment: toEnvironment(row), created: row.created };
  }

  async upsertServer(req: statussync.UpsertServerRequest, ctx: CallContext): Promise<statussync.UpsertServerResponse> {
    const v = new Violations();
    const s = req.server;
    if (!s) v.add('server', 'required');
    const id = v.uuid('server.id', s?.id) ?? uuidv7();
    const name = v.text('server.name', s?.name, { required: true, maxLength: 200 });
    const description = v.text('server.description', s?.description, { maxLength: 2000 });
    const ownerId = v.uuid('server.owner_id', s?.ownerId) ?? ctx.principal.userId;
    const environmentId = v.uuid('server.environment_id', s?.environmentId) ?? null;
    const transport = s?.transport ? v.enumValue('server.transport', s.transport, TRANSPORT.toDb) : 'stdio';
    const restartPolicy = s?.restartPolicy ? v.enumValue('server.restart_policy', s.restartPolicy, RESTART_POLICY.toDb) : 'on-failure';
    const positive = (field: string, value: number | undefined): number | null => v.integer(`server.${field}`, value, 1, INT32_MAX) ?? null;
    const write = {
      id,
      name: name!,
      description: description || null,
      owner_id: ownerId,
      environment_id: environmentId,
      transport: transport!,
      endpoint_url: v.text('server.endpoint_url', s?.endpointUrl, { maxLength: 2000 }) || null,
      command: v.text('server.command', s?.command, { maxLength: 2000 }) || null,
      config: jsonObject(v, 'server.config', s?.config),
      is_enabled: s?.isEnabled ?? false,
      cpu_limit: s?.cpuLimit === undefined ? null : boundedNumber(v, 'server.cpu_limit', s.cpuLimit, 9999.99),
      memory_limit_mb: positive('memory_limit_mb', s?.memoryLimitMb),
      health_check_interval_seconds: positive('health_check_interval_seconds', s?.healthCheckIntervalSeconds),
      health_check_timeout_seconds: positive('health_check_timeout_seconds', s?.healthCheckTimeoutSeconds),
      stale_after_seconds: positive('stale_after_seconds', s?.staleAfterSeconds),
      restart_policy: restartPolicy!,
      max_restarts: v.integer('server.max_restarts', s?.maxRestarts, 0, INT32_MAX) ?? null,
    };
    // The column keeps two decimals: anything that rounds to 0.00 would break its CHECK (cpu_limit > 0).
    if (write.cpu_limit !== null && Math.round(write.cpu_limit * 100) === 0) v.add('server.cpu_limit', 'must be at least 0.01');
    v.throwIfAny();
    const row = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      if (!(await this.deps.registry.userExists(q, ownerId))) throw new FailedPreconditionError(`server.owner_id: unknown user ${ownerId}`);
      if (environmentId && !(await this.deps.registry.environmentExists(q, environmentId))) {
        throw new FailedPreconditionError(`server.environment_id: unknown environment ${environmentId}`);
      }
      const saved = await this.deps.registry.upsertServer(q, write);
      await recordAudit(
        q,
        ctx,
        {
          action: saved.created ? 'mcp_server.create' : 'mcp_server.update',
          resourceType: 'mcp_server',
          resourceId: saved.id,
          mcpServerId: saved.id,
          requestData: req,
        },
        this.deps.redactor,
      );
      return saved;
    });
    return { server: toServer(row), created: row.created };
  }

  async reportStatus(req: statussync.ReportStatusRequest, ctx: CallContext): Promise<statussync.ReportStatusResponse> {
    const v = new Violations();
    if (!req.report) v.add('report', 'required');
    const reportId = v.uuid('report_id', req.reportId);
    const [report] = parseReports(req.report ? [req.report] : [], () => 'report', this.deps.limits, this.deps.redactor, v);
    v.throwIfAny();
    const { rows, alreadyRecorded } = await this.deps.reporter.record(
      {
        reports: [report],
        idempotencyKey: reportId,
        keyField: 'report_id',
        batchId: null,
        unknownServers: () => new NotFoundError(`server ${report.serverId} not found`),
        audit: ([row]) => ({
          action: 'status.report',
          resourceType: 'mcp_server',
          resourceId: row.server_id,
          mcpServerId: row.server_id,
          requestData: { report_id: reportId, source: row.source, current_status: JSON.parse(row.current_status!) },
          responseData: { log_id: row.id },
        }),
      },
      ctx,
    );
    return { entry: toLogEntry(rows[0]), alreadyRecorded };
  }

  async reportStatusBatch(req: statussync.ReportStatusBatchRequest, ctx: CallContext): Promise<statussync.ReportStatusBatchResponse> {
    const v = new Violations();
    const batchId = v.uuid('batch_id', req.batchId, true);
    const syncSessionId = v.uuid('sync_session_id', req.syncSessionId) ?? null;
    if (req.reports.length === 0) v.add('reports', 'at least one report is required');
    if (req.reports.length > this.deps.limits.maxBatchSize) v.add('reports', `at most ${this.deps.limits.maxBatchSize} reports per batch`);
    v.throwIfAny();
    const reports = parseReports(req.reports, (i) => `reports[${i}]`, this.deps.limits, this.deps.redactor, v).map((r) => ({
      ...r,
      syncSessionId: r.syncSessionId ?? syncSessionId,
    }));
    v.throwIfAny();
    const span = trace.getActiveSpan();
    span?.setAttribute('mcp.batch.size', reports.length);
    const { rows, alreadyRecorded } = await this.deps.reporter.record(
      {
        reports,
        idempotencyKey: batchId,
        keyField: 'batch_id',
        batchId: batchId!,
        unknownServers: (indexes) =>
          new FailedPreconditionError(
            indexes
              .slice(0, 20)
              .map((i) => `reports[${i}].server_id: unknown server ${reports[i].serverId}`)
              .join('; ') + (indexes.length > 20 ? `; … ${indexes.length - 20} more` : ''),
          ),
        audit: (stored) => ({
          action: 'status.report_batch',
          resourceType: 'status_batch',
          resourceId: batchId,
          requestData: { batch_id: batchId, sync_session_id: syncSessionId, servers: stored.map((r) => r.server_id) },
          responseData: { stored: stored.length },
        }),
      },
      ctx,
    );
    // A retry answers with the rows of the first call and stores none.
    span?.setAttribute('mcp.batch.stored', alreadyRecorded ? 0 : rows.length);
    return { entries: rows.map(toLogEntry), alreadyRecorded };
  }

  /**
   * A steady beat (the common case) is one statement in one round trip
   * (runStatement); anything else — a transition, a stale recovery, a due
   * snapshot, an unknown server — is decided again under the row lock, with
   * its history row and audit row, in a transaction.
   */
  async heartbeat(req: statussync.HeartbeatRequest, ctx: CallContext): Promise<statussync.HeartbeatResponse> {
    const beat = parseHeartbeat(req, this.deps.limits, this.deps.redactor);
    const interval = this.deps.heartbeatSnapshotIntervalSeconds;
    const statement = { query: (text: string, values: unknown[]) => runStatement(this.deps.dataSource, ctx, text, values) };
    const [steady] = await this.deps.status.steadyHeartbeats(statement, [beat], interval);
    if (steady) return steadyResponse(steady);
    const outcome = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      const outcomes = await this.recordHeartbeats(q, [beat], ctx);
      const result = outcomes.get(beat.serverId);
      if (!result) throw new NotFoundError(`server ${beat.serverId} not found`);
      return result;
    });
    countCommitted([outcome]);
    return heartbeatResponse(outcome);
  }

  /**
   * Heartbeat for many servers in one transaction: one UPDATE for every
   * steady beat, then the rest (transitions, recoveries, snapshots) with
   * their history and audit rows. Unknown servers are reported by index.
   * Beats go to the database in server id order, the order in which
   * concurrent calls lock rows; two calls that share servers may still
   * deadlock if PostgreSQL chooses another join order, and one is then
   * aborted (ABORTED, which clients retry).
   */
  async heartbeatBatch(req: statussync.HeartbeatBatchRequest, ctx: CallContext): Promise<statussync.HeartbeatBatchResponse> {
    const beats = parseHeartbeatBatch(req, this.deps.limits, this.deps.redactor);
    const span = trace.getActiveSpan();
    span?.setAttribute('mcp.batch.size', beats.length);
    const inIdOrder = [...beats].sort((a, b) => (a.serverId < b.serverId ? -1 : a.serverId > b.serverId ? 1 : 0));
    const { steady, outcomes } = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      const applied = await this.deps.status.steadyHeartbeats(q, inIdOrder, this.deps.heartbeatSnapshotIntervalSeconds);
      const steadyByServer = new Map(applied.map((b) => [b.serverId, b]));
      const rest = inIdOrder.filter((b) => !steadyByServer.has(b.serverId));
      return { steady: steadyByServer, outcomes: rest.length > 0 ? await this.recordHeartbeats(q, rest, ctx) : new Map<string, HeartbeatOutcome>() };
    });
    countCommitted(outcomes.values());
    const decided = [...outcomes.values()];
    span?.setAttributes({
      'mcp.batch.stored': decided.filter((o) => o.row).length,
      'mcp.batch.transitions': decided.filter((o) => o.transition).length,
    });
    const unknownServerIndexes: number[] = [];
    const results = beats.map((b, i) => {
      const applied = steady.get(b.serverId);
      if (applied) return steadyResponse(applied);
      const outcome = outcomes.get(b.serverId);
      if (outcome) return heartbeatResponse(outcome);
      unknownServerIndexes.push(i);
      return statussync.HeartbeatResponse.fromPartial({});
    });
    return { results, unknownServerIndexes };
  }

  /** The full heartbeat decision for beats that are not steady, each transition audited. */
  private async recordHeartbeats(q: QueryRunner, beats: HeartbeatInput[], ctx: CallContext): Promise<Map<string, HeartbeatOutcome>> {
    const outcomes = await this.deps.status.heartbeats(
      q,
      beats.map((b) => ({ ...b, logId: uuidv7() })),
      ctx.principal.userId,
      this.deps.heartbeatSnapshotIntervalSeconds,
    );
    // Steady beats are telemetry, not actions: only a transition is audited.
    for (const [serverId, result] of outcomes) {
      if (!result.transition) continue;
      await recordAudit(
        q,
        ctx,
        {
          action: 'status.transition',
          resourceType: 'mcp_server',
          resourceId: serverId,
          mcpServerId: serverId,
          requestData: { source: 'heartbeat', state: result.state, health: result.health },
          responseData: { log_id: result.row!.id },
        },
        this.deps.redactor,
      );
    }
    return outcomes;
  }

  async getServerStatusHistory(
    req: statussync.GetServerStatusHistoryRequest,
    ctx: CallContext,
  ): Promise<statussync.GetServerStatusHistoryResponse> {
    const v = new Violations();
    const serverId = v.uuid('server_id', req.serverId, true);
    const hours = v.integer('hours', req.hours === 0 ? 24 : req.hours, 1, MAX_LOOKBACK_HOURS);
    v.throwIfAny();
    const scope = { rpc: 'GetServerStatusHistory', serverId, hours };
    const token = req.pageToken ? decodePageToken<TimeCursor & { since: string }>(req.pageToken, scope) : undefined;
    const size = pageSize(req.pageSize);
    const { rows, since } = await inTransaction(
      this.deps.dataSource,
      ctx,
      async (q) => {
        if ((await this.deps.status.existingServers(q, [serverId!])).size === 0) throw new NotFoundError(`server ${serverId} not found`);
        const windowStart = token?.since ?? (await this.deps.status.windowStart(q, hours!));
        return { since: windowStart, rows: await this.deps.status.statusHistory(q, serverId!, windowStart, token, size + 1) };
      },
      { readAs: ctx.principal },
    );
    const page = rows.slice(0, size);
    const last = page[page.length - 1];
    return {
      entries: page.map((r) => ({
        id: r.id,
        timestamp: r.timestamp,
        previousState: r.previous_state ?? undefined,
        currentState: r.current_state ?? undefined,
        source: sourceOf(r.source),
        details: r.details ?? undefined,
        responseTimeMs: r.response_time_ms ?? undefined,
      })),
      nextPageToken: rows.length > size && last ? encodePageToken({ ts: last.cursor_ts, id: last.id, since }, scope) : '',
    };
  }

  async listServerHealthHistory(
    req: statussync.ListServerHealthHistoryRequest,
    ctx: CallContext,
  ): Promise<statussync.ListServerHealthHistoryResponse> {
    const scope = { rpc: 'ListServerHealthHistory' };
    const token = req.pageToken ? decodePageToken<TimeCursor & { since: string }>(req.pageToken, scope) : undefined;
    const size = pageSize(req.pageSize);
    const { rows, since } = await inTransaction(
      this.deps.dataSource,
      ctx,
      async (q) => {
        const windowStart = token?.since ?? (await this.deps.status.windowStart(q, HEALTH_HISTORY_HOURS));
        return { since: windowStart, rows: await this.deps.status.healthHistory(q, windowStart, token, size + 1) };
      },
      { readAs: ctx.principal },
    );
    const page = rows.slice(0, size);
    const last = page[page.length - 1];
    return {
      entries: page.map((r) => ({
        id: r.id,
        serverId: r.server_id,
        timestamp: r.timestamp,
        serverName: r.server_name,
        previousHealth: r.previous_health ?? undefined,
        currentHealth: r.current_health ?? undefined,
        source: sourceOf(r.source),
        responseTimeMs: r.response_time_ms ?? undefined,
        details: r.details ?? undefined,
      })),
      nextPageToken: rows.length > size && last ? encodePageToken({ ts: last.cursor_ts, id: last.id, since }, scope) : '',
    };
  }

  async getServerDashboard(req: statussync.GetServerDashboardRequest, ctx: CallContext): Promise<statussync.GetServerDashboardResponse> {
    const v = new Violations();
    const ownerId = v.uuid('owner_id', req.ownerId) ?? ctx.principal.userId;
    v.throwIfAny();
    if (ownerId !== ctx.principal.userId && !ctx.principal.isAdmin) {
      throw new PermissionDeniedError("only admins may read another owner's dashboard");
    }
    const scope = { rpc: 'GetServerDashboard', ownerId };
    const cursor = req.pageToken ? decodePageToken<TimeCursor>(req.pageToken, scope) : undefined;
    const size = pageSize(req.pageSize);
    const rows = await inTransaction(
      this.deps.dataSource,
      ctx,
      async (q) => {
        if (!(await this.deps.registry.userExists(q, ownerId))) throw new NotFoundError(`owner ${ownerId} not found`);
        return this.deps.status.dashboard(q, ownerId, cursor, size + 1);
      },
      { readAs: ctx.principal },
    );
    const page = rows.slice(0, size);
    const last = page[page.length - 1];
    return {
      servers: page.map((r) => ({
        id: r.id,
        name: r.name,
        state: STATE.fromDb.get(r.status) ?? statussync.ServerState.SERVER_STATE_UNSPECIFIED,
        cpuUsage: r.cpu_usage ?? undefined,
        memoryUsage: r.memory_usage ?? undefined,
        minutesSinceHealthCheck: r.minutes_since_health_check ?? undefined,
        lastActivityAt: r.last_activity_at ?? undefined,
      })),
      nextPageToken: rows.length > size && last ? encodePageToken({ ts: last.cursor_ts, id: last.id }, scope) : '',
    };
  }

  async watchServerStatus(
    req: statussync.WatchServerStatusRequest,
    stream: ServerStreamWriter<statussync.WatchServerStatusResponse>,
    ctx: CallContext,
  ): Promise<void> {
    const v = new Violations();
    const serverId = v.uuid('server_id', req.serverId);
    const ownerId = v.uuid('owner_id', req.ownerId);
    if (serverId && ownerId) v.add('owner_id', 'at most one of server_id and owner_id');
    v.throwIfAny();
    await this.deps.watch.run({ serverId, ownerId }, req.cursor, stream, ctx, toLogEntry);
  }
}

/** Metrics of committed heartbeat outcomes: history rows written, transitions. */
function countCommitted(outcomes: Iterable<HeartbeatOutcome>): void {
  for (const o of outcomes) {
    if (o.row) platformMetrics.rowsIngested(STATUS_LOG_TABLE, 1);
    if (o.transition) platformMetrics.heartbeatTransition({ source: 'heartbeat', health: o.health });
  }
}

function steadyResponse(beat: SteadyBeat): statussync.HeartbeatResponse {
  return {
    transitionRecorded: false,
    snapshotRecorded: false,
    entry: undefined,
    state: STATE.fromDb.get(beat.state) ?? statussync.ServerState.SERVER_STATE_UNSPECIFIED,
    health: HEALTH.fromDb.get(beat.health) ?? statussync.ServerHealth.SERVER_HEALTH_UNSPECIFIED,
  };
}

function heartbeatResponse(outcome: HeartbeatOutcome): statussync.HeartbeatResponse {
  return {
    transitionRecorded: outcome.transition,
    snapshotRecorded: outcome.snapshot && !outcome.transition,
    entry: outcome.row ? toLogEntry(outcome.row) : undefined,
    state: STATE.fromDb.get(outcome.state) ?? statussync.ServerState.SERVER_STATE_UNSPECIFIED,
    health: HEALTH.fromDb.get(outcome.health) ?? statussync.ServerHealth.SERVER_HEALTH_UNSPECIFIED,
  };
}

function sourceOf(source: string): statussync.StatusSource {
  return SOURCE.fromDb.get(source) ?? statussync.StatusSource.STATUS_SOURCE_UNSPECIFIED;
}

/** JSON object text; empty means {}. */
function jsonObject(v: Violations, field: string, text: string | undefined): string {
  const before = v.count;
  const parsed = v.json(field, text, JSON_SETTINGS);
  if (v.count > before) return '{}';
  if (parsed === undefined) return '{}';
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    v.add(field, 'must be a JSON object');
    return '{}';
  }
  return JSON.stringify(parsed);
}

function validDate(v: Violations, field: string, value: Date | undefined): Date | undefined {
  if (value === undefined) return undefined;
  if (Number.isNaN(value.getTime())) {
    v.add(field, 'not a valid timestamp');
    return undefined;
  }
  return value;
}

export function toLogEntry(r: StatusLogRow): statussync.StatusLogEntry {
  return {
    id: r.id,
    serverId: r.server_id,
    previousStatus: r.previous_status ?? undefined,
    currentStatus: r.current_status ?? undefined,
    source: sourceOf(r.source),
    details: r.details ?? undefined,
    healthCheckResult: r.health_check_result ?? undefined,
    heartbeatData: r.heartbeat_data ?? undefined,
    responseTimeMs: r.response_time_ms ?? undefined,
    uptimeSeconds: r.uptime_seconds ?? undefined,
    timestamp: r.timestamp,
    createdBy: r.created_by ?? undefined,
    syncSessionId: r.sync_session_id ?? undefined,
    batchId: r.batch_id ?? undefined,
  };
}

function toEnvironment(r: EnvironmentRow): statussync.Environment {
  return {
    id: r.id,
    name: r.name,
    description: r.description ?? undefined,
    environmentType: ENVIRONMENT_TYPE.fromDb.get(r.environment_type) ?? statussync.EnvironmentType.ENVIRONMENT_TYPE_UNSPECIFIED,
    config: r.config,
    resourceLimits: r.resource_limits,
    maintenanceWindowStart: r.maintenance_window_start ?? undefined,
    maintenanceWindowEnd: r.maintenance_window_end ?? undefined,
    currentDeploymentVersion: r.current_deployment_version ?? undefined,
    isActive: r.is_active,
  };
}

function toServer(r: ServerRow): statussync.Server {
  return {
    id: r.id,
    name: r.name,
    description: r.description ?? undefined,
    ownerId: r.owner_id ?? '',
    environmentId: r.environment_id ?? '',
    transport: TRANSPORT.fromDb.get(r.transport) ?? statussync.Transport.TRANSPORT_UNSPECIFIED,
    endpointUrl: r.endpoint_url ?? undefined,
    command: r.command ?? undefined,
    config: r.config,
    isEnabled: r.is_enabled,
    cpuLimit: r.cpu_limit ?? undefined,
    memoryLimitMb: r.memory_limit_mb ?? undefined,
    healthCheckIntervalSeconds: r.health_check_interval_seconds,
    healthCheckTimeoutSeconds: r.health_check_timeout_seconds,
    staleAfterSeconds: r.stale_after_seconds,
    restartPolicy: RESTART_POLICY.fromDb.get(r.restart_policy) ?? statussync.RestartPolicy.RESTART_POLICY_UNSPECIFIED,
    maxRestarts: r.max_restarts,
    state: STATE.fromDb.get(r.status) ?? statussync.ServerState.SERVER_STATE_UNSPECIFIED,
    health: HEALTH.fromDb.get(r.health) ?? statussync.ServerHealth.SERVER_HEALTH_UNSPECIFIED,
    cpuUsage: r.cpu_usage ?? undefined,
    memoryUsage: r.memory_usage ?? undefined,
    lastHealthCheck: r.last_health_check ?? undefined,
    lastHeartbeatAt: r.last_heartbeat_at ?? undefined,
    lastActivityAt: r.last_activity_at ?? undefined,
    currentStatus: r.current_status,
    staleSince: r.stale_since ?? undefined,
  };
}
