import { connectionlog, SERVICE_PROTO_FILES } from '@mcp/proto';
import { createCallHandlers, type CallGuard, type CommitOrderLimits, type Logger, type NotificationHub, type Redactor, type ServiceRegistration } from '@mcp/runtime';
import type { DataSource } from 'typeorm';
import { DEFAULT_INGEST_LIMITS, type IngestLimits } from '@mcp/runtime';
import { ConnectionLogHandlers } from './handlers';
import { EventRecorder } from './recorder';
import { ActivityRepository, ConnectionLogRepository, RegistryRepository } from './repository';
import { EventTail } from './tail';

export const FULL_NAME = 'mcp.connectionlog.v1.ConnectionLogService';
export const DEFAULT_PORT = 50051;

export interface ConnectionLogServiceOptions {
  dataSource: DataSource;
  /** Wakes live tails when ingest transactions commit. */
  hub: NotificationHub;
  guard: CallGuard;
  logger: Logger;
  redactor: Redactor;
  ingestLimits?: Partial<IngestLimits>;
  tailLimits?: Partial<CommitOrderLimits>;
  streamMaxInFlight?: number;
}

export interface ConnectionLogService {
  registration: ServiceRegistration;
  handlers: ConnectionLogHandlers;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** Wires repositories -> domain -> handlers, and the handlers into a grpc-js service. */
export function createConnectionLogService(options: ConnectionLogServiceOptions): ConnectionLogService {
  const ingestLimits = { ...DEFAULT_INGEST_LIMITS, ...options.ingestLimits };
  const tailLimits: CommitOrderLimits = {
    batchSize: 500,
    heldBackRecheckMs: 200,
    idleRecheckMs: 30_000,
    maxConcurrent: 1_000,
    // A row committing after a cursor can be stamped up to the ingest window (plus skew) earlier.
    maxLagMs: ingestLimits.maxEventAgeMs + 60_000,
    ...options.tailLimits,
  };
  const logs = new ConnectionLogRepository();
  const { hub } = options;
  const handlers = new ConnectionLogHandlers({
    dataSource: options.dataSource,
    recorder: new EventRecorder(options.dataSource, logs, ingestLimits, options.redactor),
    tail: new EventTail(options.dataSource, logs, hub, tailLimits),
    logs,
    activity: new ActivityRepository(),
    registry: new RegistryRepository(),
    redactor: options.redactor,
    streamMaxInFlight: options.streamMaxInFlight ?? 2,
  });
  const call = createCallHandlers({ logger: options.logger, guard: options.guard });
  const implementation: connectionlog.ConnectionLogServiceServer = {
    recordEvents: call.unary('connection_logs:write', (req: connectionlog.RecordEventsRequest, ctx) => handlers.recordEvents(req, ctx)),
    streamEvents: call.bidiStreaming('connection_logs:write', (reqs: AsyncIterable<connectionlog.StreamEventsRequest>, out, ctx) =>
      handlers.streamEvents(reqs, out, ctx),
    ),
    listEvents: call.unary('connection_logs:read', (req: connectionlog.ListEventsRequest, ctx) => handlers.listEvents(req, ctx)),
    getAgentConnectionLogs: call.unary('connection_logs:read', (req: connectionlog.GetAgentConnectionLogsRequest, ctx) =>
      handlers.getAgentConnectionLogs(req, ctx),
    ),
    getRecentActivity: call.unary('connection_logs:read', (req: connectionlog.GetRecentActivityRequest, ctx) => handlers.getRecentActivity(req, ctx)),
    tailEvents: call.serverStreaming('connection_logs:read', (req: connectionlog.TailEventsRequest, out, ctx) => handlers.tailEvents(req, out, ctx)),
    upsertAgent: call.unary('registry:write', (req: connectionlog.UpsertAgentRequest, ctx) => handlers.upsertAgent(req, ctx)),
    upsertConnection: call.unary('registry:write', (req: connectionlog.UpsertConnectionRequest, ctx) => handlers.upsertConnection(req, ctx)),
  };
  return {
    registration: {
      fullName: FULL_NAME,
      definition: connectionlog.ConnectionLogServiceService,
      implementation,
      protoFile: SERVICE_PROTO_FILES[FULL_NAME],
    },
    handlers,
    start: async () => undefined,
    close: async () => undefined,
  };
}
