import * as path from 'node:path';
import { audit, SERVICE_PROTO_FILES } from '@mcp/proto';
import { createCallHandlers, type CallGuard, type Logger, type Redactor, type ServiceUnit } from '@mcp/runtime';
import type { DataSource } from 'typeorm';
import { CheckpointService, type CheckpointOptions } from './checkpoints';
import { DEFAULT_INGEST_LIMITS, type IngestLimits } from '@mcp/runtime';
import { AuditHandlers } from './handlers';
import { ChainVerifier, CheckpointSigner, CheckpointStore } from './integrity';
import { AuditLogRepository, ErasureRepository, SecurityEventRepository } from './repository';

export const FULL_NAME = 'mcp.audit.v1.AuditService';
export const DEFAULT_PORT = 50053;
const DEFAULT_CHECKPOINT_INTERVAL_MS = 5 * 60_000;
/** Shorter keys make the HMAC guessable offline by anyone who reads the checkpoints. */
const MIN_CHECKPOINT_KEY_BYTES = 32;

export interface AuditServiceOptions {
  dataSource: DataSource;
  guard: CallGuard;
  logger: Logger;
  redactor: Redactor;
  ingestLimits?: Partial<IngestLimits>;
  checkpoint?: Partial<CheckpointOptions>;
}

export interface AuditService extends ServiceUnit {
  handlers: AuditHandlers;
}

/** Checkpoint settings from the environment: AUDIT_CHECKPOINT_KEY, AUDIT_CHECKPOINT_DIR, AUDIT_CHECKPOINT_INTERVAL_MS. */
export function checkpointOptionsFromEnv(env: NodeJS.ProcessEnv): CheckpointOptions {
  const key = env.AUDIT_CHECKPOINT_KEY;
  if (key !== undefined && Buffer.byteLength(key) < MIN_CHECKPOINT_KEY_BYTES) {
    throw new Error(`AUDIT_CHECKPOINT_KEY must be at least ${MIN_CHECKPOINT_KEY_BYTES} bytes`);
  }
  const interval = env.AUDIT_CHECKPOINT_INTERVAL_MS === undefined ? DEFAULT_CHECKPOINT_INTERVAL_MS : Number(env.AUDIT_CHECKPOINT_INTERVAL_MS);
  if (!Number.isInteger(interval) || interval < 0) throw new Error('AUDIT_CHECKPOINT_INTERVAL_MS must be a non-negative integer');
  return {
    key: key ? Buffer.from(key) : undefined,
    directory: env.AUDIT_CHECKPOINT_DIR ?? path.resolve('audit-checkpoints'),
    intervalMs: interval,
  };
}

/** Wires repositories -> domain -> handlers, and the handlers into a grpc-js service. */
export function createAuditService(options: AuditServiceOptions): AuditService {
  const checkpoint = { ...checkpointOptionsFromEnv({}), intervalMs: 0, ...options.checkpoint };
  const signer = checkpoint.key ? new CheckpointSigner(checkpoint.key) : undefined;
  const store = new CheckpointStore(checkpoint.directory);
  const verifier = new ChainVerifier(store, signer);
  const checkpoints = new CheckpointService(options.dataSource, verifier, store, signer, options.redactor, options.logger);
  const handlers = new AuditHandlers({
    dataSource: options.dataSource,
    redactor: options.redactor,
    limits: { ...DEFAULT_INGEST_LIMITS, ...options.ingestLimits },
    logs: new AuditLogRepository(),
    securityEvents: new SecurityEventRepository(),
    erasure: new ErasureRepository(),
    verifier,
    checkpoints,
  });
  const call = createCallHandlers({ logger: options.logger, guard: options.guard });
  const implementation: audit.AuditServiceServer = {
    recordAuditEvents: call.unary('audit:write', (req: audit.RecordAuditEventsRequest, ctx) => handlers.recordAuditEvents(req, ctx)),
    // audit:read_own admits (every reading role has it); row-level security widens it to all rows for audit:read.
    searchAuditLogs: call.unary('audit:read_own', (req: audit.SearchAuditLogsRequest, ctx) => handlers.searchAuditLogs(req, ctx)),
    summarizeActivity: call.unary('audit:read_own', (req: audit.SummarizeActivityRequest, ctx) => handlers.summarizeActivity(req, ctx)),
    exportAuditLogs: call.serverStreaming('audit:export', (req: audit.ExportAuditLogsRequest, out, ctx) => handlers.exportAuditLogs(req, out, ctx)),
    recordSecurityEvents: call.unary('security_events:write', (req: audit.RecordSecurityEventsRequest, ctx) => handlers.recordSecurityEvents(req, ctx)),
    listSecurityEvents: call.unary('security_events:read', (req: audit.ListSecurityEventsRequest, ctx) => handlers.listSecurityEvents(req, ctx)),
    assignIncident: call.unary('security_events:manage', (req: audit.AssignIncidentRequest, ctx) => handlers.assignIncident(req, ctx)),
    addIncidentNote: call.unary('security_events:manage', (req: audit.AddIncidentNoteRequest, ctx) => handlers.addIncidentNote(req, ctx)),
    resolveIncident: call.unary('security_events:manage', (req: audit.ResolveIncidentRequest, ctx) => handlers.resolveIncident(req, ctx)),
    detectFailedLoginBursts: call.unary('security_events:read', (req: audit.DetectFailedLoginBurstsRequest, ctx) =>
      handlers.detectFailedLoginBursts(req, ctx),
    ),
    verifyIntegrity: call.unary('audit:verify', (req: audit.VerifyIntegrityRequest, ctx) => handlers.verifyIntegrity(req, ctx)),
    createCheckpoint: call.unary('audit:verify', (req: audit.CreateCheckpointRequest, ctx) => handlers.createCheckpoint(req, ctx)),
    eraseSubject: call.unary('audit:erase', (req: audit.EraseSubjectRequest, ctx) => handlers.eraseSubject(req, ctx)),
  };
  return {
    registration: {
      fullName: FULL_NAME,
      definition: audit.AuditServiceService,
      implementation,
      protoFile: SERVICE_PROTO_FILES[FULL_NAME],
    },
    handlers,
    start: async () => checkpoints.start(checkpoint.intervalMs),
    close: () => checkpoints.stop(),
  };
}
