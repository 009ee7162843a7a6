import { SERVICE_PROTO_FILES, statussync } from '@mcp/proto';
import { createCallHandlers, type CommitOrderLimits, type ServiceDeps, type ServiceUnit } from '@mcp/runtime';
import { StatusSyncHandlers } from './handlers';
import { StatusReporter } from './reports';
import { RegistryRepository, StatusRepository } from './repository';
import { DEFAULT_REPORT_LIMITS, type ReportLimits } from './status';
import { StaleSweeper, type SweeperOptions } from './sweeper';
import { StatusWatch } from './watch';

export const FULL_NAME = 'mcp.statussync.v1.StatusSyncService';
export const DEFAULT_PORT = 50052;

export interface StatusSyncOptions {
  reportLimits?: Partial<ReportLimits>;
  watchLimits?: Partial<CommitOrderLimits>;
  sweeper?: Partial<SweeperOptions>;
  /** Heartbeats also log a snapshot row when a server's newest row is this old (seconds); 0 = off. */
  heartbeatSnapshotIntervalSeconds?: number;
}

export interface StatusSyncService extends ServiceUnit {
  handlers: StatusSyncHandlers;
  sweeper: StaleSweeper;
}

export const DEFAULT_SWEEPER_OPTIONS: SweeperOptions = { intervalMs: 5_000, batchSize: 1_000, reportKeyRetentionHours: 24 };

/** Wires repositories -> domain -> handlers, and the handlers into a grpc-js service; the sweeper runs between start() and close(). */
export function createStatusSyncService(deps: ServiceDeps & StatusSyncOptions): StatusSyncService {
  const limits = { ...DEFAULT_REPORT_LIMITS, ...deps.reportLimits };
  const watchLimits: CommitOrderLimits = {
    batchSize: 500,
    heldBackRecheckMs: 200,
    idleRecheckMs: 30_000,
    maxConcurrent: 1_000,
    // History rows are stamped when written, so a row committing after a cursor is
    // at most as old as the longest write transaction.
    maxLagMs: 10 * 60_000,
    ...deps.watchLimits,
  };
  const status = new StatusRepository();
  const sweeper = new StaleSweeper(deps.dataSource, status, { ...DEFAULT_SWEEPER_OPTIONS, ...deps.sweeper }, deps.logger.child({ component: 'stale-sweeper' }));
  const handlers = new StatusSyncHandlers({
    dataSource: deps.dataSource,
    redactor: deps.redactor,
    status,
    registry: new RegistryRepository(),
    reporter: new StatusReporter(deps.dataSource, status, deps.redactor),
    watch: new StatusWatch(deps.dataSource, status, deps.hub, watchLimits),
    limits,
    heartbeatSnapshotIntervalSeconds: deps.heartbeatSnapshotIntervalSeconds ?? 0,
  });
  const call = createCallHandlers({ logger: deps.logger, guard: deps.guard });
  const implementation: statussync.StatusSyncServiceServer = {
    upsertEnvironment: call.unary('registry:write', (req: statussync.UpsertEnvironmentRequest, ctx) => handlers.upsertEnvironment(req, ctx)),
    upsertServer: call.unary('registry:write', (req: statussync.UpsertServerRequest, ctx) => handlers.upsertServer(req, ctx)),
    reportStatus: call.unary('status:write', (req: statussync.ReportStatusRequest, ctx) => handlers.reportStatus(req, ctx)),
    reportStatusBatch: call.unary('status:write', (req: statussync.ReportStatusBatchRequest, ctx) => handlers.reportStatusBatch(req, ctx)),
    heartbeat: call.unary('status:write', (req: statussync.HeartbeatRequest, ctx) => handlers.heartbeat(req, ctx)),
    heartbeatBatch: call.unary('status:write', (req: statussync.HeartbeatBatchRequest, ctx) => handlers.heartbeatBatch(req, ctx)),
    getServerStatusHistory: call.unary('status:read', (req: statussync.GetServerStatusHistoryRequest, ctx) =>
      handlers.getServerStatusHistory(req, ctx),
    ),
    listServerHealthHistory: call.unary('status:read', (req: statussync.ListServerHealthHistoryRequest, ctx) =>
      handlers.listServerHealthHistory(req, ctx),
    ),
    getServerDashboard: call.unary('status:read', (req: statussync.GetServerDashboardRequest, ctx) => handlers.getServerDashboard(req, ctx)),
    watchServerStatus: call.serverStreaming('status:read', (req: statussync.WatchServerStatusRequest, out, ctx) =>
      handlers.watchServerStatus(req, out, ctx),
    ),
  };
  return {
    registration: {
      fullName: FULL_NAME,
      definition: statussync.StatusSyncServiceService,
      implementation,
      protoFile: SERVICE_PROTO_FILES[FULL_NAME],
    },
    handlers,
    sweeper,
    start: async () => sweeper.start(),
    close: () => sweeper.stop(),
  };
}
