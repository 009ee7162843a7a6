/**
 * The four service clients. Each is one ServiceSpec (where it listens, which
 * calls may be repeated, which client ids to assign) plus, where the service
 * has one, its resumable stream.
 */
import { trace, context } from '@opentelemetry/api';
import { audit, connectionlog, retention, statussync } from '@mcp/proto';
import { eventTime, uuidv7 } from './ids';
import type { ClientOptions } from './options';
import { resumable, type ResumableIterable, type ResumableOptions } from './resumable';
import { isServiceError, retryDecision, sleep } from './retry';
import { createServiceClient, type DeepPartial, type ServiceClient, type ServiceSpec } from './service-client';

// ------------------------------------------------------------------ client-side keys

/** Assigns the idempotency key (id, timestamp) of a connection event, when absent. */
export function assignConnectionEventKey(event: connectionlog.ConnectionEvent): void {
  if (!event.id) event.id = uuidv7();
  if (!event.timestamp) event.timestamp = eventTime();
}

/** Assigns the idempotency key (id, created_at) of an audit event, and the active trace id, when absent. */
export function assignAuditEventKey(event: audit.AuditEvent): void {
  if (!event.id) event.id = uuidv7();
  if (!event.createdAt) event.createdAt = eventTime();
  if (!event.traceId) {
    const span = trace.getSpanContext(context.active());
    if (span && span.traceId !== '00000000000000000000000000000000') event.traceId = span.traceId;
  }
}

/** Assigns the idempotency key (id) and the time of a security event, when absent. */
export function assignSecurityEventKey(event: audit.SecurityEvent): void {
  if (!event.id) event.id = uuidv7();
  if (!event.occurredAt) event.occurredAt = eventTime();
}

// ------------------------------------------------------------------ specs

type ConnectionLogDefinition = typeof connectionlog.ConnectionLogServiceService;
type StatusSyncDefinition = typeof statussync.StatusSyncServiceService;
type AuditDefinition = typeof audit.AuditServiceService;
type RetentionDefinition = typeof retention.RetentionServiceService;

export const CONNECTION_LOG_SPEC: ServiceSpec<ConnectionLogDefinition> = {
  service: 'connection-log',
  defaultPort: 50051,
  definition: connectionlog.ConnectionLogServiceService,
  messages: connectionlog,
  // Writes are idempotent because their keys are assigned here, before the first attempt.
  idempotent: ['recordEvents', 'upsertAgent', 'upsertConnection', 'listEvents', 'getAgentConnectionLogs', 'getRecentActivity'],
  prepare: {
    recordEvents: (r) => r.events.forEach(assignConnectionEventKey),
    upsertAgent: (r) => {
      if (r.agent && !r.agent.id) r.agent.id = uuidv7();
    },
    upsertConnection: (r) => {
      if (r.connection && !r.connection.id) r.connection.id = uuidv7();
    },
  },
};

export const STATUS_SYNC_SPEC: ServiceSpec<StatusSyncDefinition> = {
  service: 'status-sync',
  defaultPort: 50052,
  definition: statussync.StatusSyncServiceService,
  messages: statussync,
  // Heartbeat(Batch): a repeated observation of the same state records no second transition.
  // UpsertEnvironment / UpsertServer without an id create a new row: not repeated.
  idempotent: ['reportStatus', 'reportStatusBatch', 'heartbeat', 'heartbeatBatch', 'getServerStatusHistory', 'listServerHealthHistory', 'getServerDashboard'],
  prepare: {
    reportStatus: (r) => {
      if (!r.reportId) r.reportId = uuidv7();
    },
    reportStatusBatch: (r) => {
      if (!r.batchId) r.batchId = uuidv7();
    },
  },
};

export const AUDIT_SPEC: ServiceSpec<AuditDefinition> = {
  service: 'audit',
  defaultPort: 50053,
  definition: audit.AuditServiceService,
  messages: audit,
  // Incident steps, checkpoints and erasure are audited actions: a repeat would be a second action.
  idempotent: [
    'recordAuditEvents',
    'recordSecurityEvents',
    'searchAuditLogs',
    'summarizeActivity',
    'listSecurityEvents',
    'detectFailedLoginBursts',
    'verifyIntegrity',
  ],
  prepare: {
    recordAuditEvents: (r) => r.events.forEach(assignAuditEventKey),
    recordSecurityEvents: (r) => r.events.forEach(assignSecurityEventKey),
  },
};

export const RETENTION_SPEC: ServiceSpec<RetentionDefinition> = {
  service: 'retention',
  defaultPort: 50054,
  definition: retention.RetentionServiceService,
  messages: retention,
  // Runs, policy changes and holds are audited administrative actions: never repeated on a lost answer.
  idempotent: ['listRuns', 'getRun', 'listPolicies', 'listLegalHolds'],
};

// ------------------------------------------------------------------ clients

export type ConnectionLogClient = ServiceClient<ConnectionLogDefinition> & {
  /**
   * Live tail in commit order that survives service restarts: reconnects from
   * the last cursor (the opening cursor-only message included) with backoff,
   * so no event is missed or repeated. Ends on break/return() or `signal`.
   */
  tail(filter?: DeepPartial<connectionlog.EventFilter>, options?: ResumableOptions): ResumableIterable<connectionlog.ConnectionEvent>;
};

export type StatusSyncClient = ServiceClient<StatusSyncDefinition> & {
  /** WatchServerStatus, resumable like ConnectionLogClient.tail. */
  watch(
    request?: Omit<DeepPartial<statussync.WatchServerStatusRequest>, 'cursor'>,
    options?: ResumableOptions,
  ): ResumableIterable<statussync.StatusLogEntry>;
};

export type AuditClient = ServiceClient<AuditDefinition> & {
  /**
   * ExportAuditLogs as an async iterable of chunks, resumable like
   * ConnectionLogClient.tail: a break reopens the export from the last
   * chunk's cursor, over the range fixed when it started.
   */
  exportAuditLogs(
    request?: Omit<DeepPartial<audit.ExportAuditLogsRequest>, 'cursor'>,
    options?: ResumableOptions,
  ): ResumableIterable<audit.ExportAuditLogsResponse>;
};

export type RetentionClient = ServiceClient<RetentionDefinition>;

export function createConnectionLogClient(options: ClientOptions = {}): ConnectionLogClient {
  const client = createServiceClient(CONNECTION_LOG_SPEC, options);
  return Object.assign(client, {
    tail: (filter: DeepPartial<connectionlog.EventFilter> = {}, tailOptions: ResumableOptions = {}) =>
      resumable<connectionlog.TailEventsResponse, connectionlog.ConnectionEvent>(
        {
          method: connectionlog.ConnectionLogServiceService.tailEvents.path,
          open: (cursor, metadata) =>
            client.openStream('tailEvents', connectionlog.TailEventsRequest.fromPartial({ filter, cursor }), { metadata }),
          cursorOf: (m) => m.cursor,
          itemOf: (m) => m.event,
          retryPolicy: client.retryPolicy,
          onRetry: options.onRetry,
        },
        tailOptions,
      ),
  });
}

export function createStatusSyncClient(options: ClientOptions = {}): StatusSyncClient {
  const client = createServiceClient(STATUS_SYNC_SPEC, options);
  return Object.assign(client, {
    watch: (request: Omit<DeepPartial<statussync.WatchServerStatusRequest>, 'cursor'> = {}, watchOptions: ResumableOptions = {}) =>
      resumable<statussync.WatchServerStatusResponse, statussync.StatusLogEntry>(
        {
          method: statussync.StatusSyncServiceService.watchServerStatus.path,
          open: (cursor, metadata) =>
            client.openStream('watchServerStatus', statussync.WatchServerStatusRequest.fromPartial({ ...request, cursor }), { metadata }),
          cursorOf: (m) => m.cursor,
          itemOf: (m) => m.entry,
          retryPolicy: client.retryPolicy,
          onRetry: options.onRetry,
        },
        watchOptions,
      ),
  });
}

export function createAuditClient(options: ClientOptions = {}): AuditClient {
  const client = createServiceClient(AUDIT_SPEC, options);
  return Object.assign(client, {
    exportAuditLogs: (request: Omit<DeepPartial<audit.ExportAuditLogsRequest>, 'cursor'> = {}, exportOptions: ResumableOptions = {}) =>
      resumable<audit.ExportAuditLogsResponse, audit.ExportAuditLogsResponse>(
        {
          method: audit.AuditServiceService.exportAuditLogs.path,
          open: (cursor, metadata) =>
            client.openStream('exportAuditLogs', audit.ExportAuditLogsRequest.fromPartial({ ...request, cursor }), { metadata }),
          cursorOf: (m) => m.cursor,
          itemOf: (m) => m,
          isLast: (m) => m.last,
          retryPolicy: client.retryPolicy,
          onRetry: options.onRetry,
        },
        exportOptions,
      ),
  });
}

export function createRetentionClient(options: ClientOptions = {}): RetentionClient {
  return createServiceClient(RETENTION_SPEC, options);
}
