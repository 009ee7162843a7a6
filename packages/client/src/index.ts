export {
  createConnectionLogClient,
  createStatusSyncClient,
  createAuditClient,
  createRetentionClient,
  assignConnectionEventKey,
  assignAuditEventKey,
  assignSecurityEventKey,
  CONNECTION_LOG_SPEC,
  STATUS_SYNC_SPEC,
  AUDIT_SPEC,
  RETENTION_SPEC,
  type ConnectionLogClient,
  type StatusSyncClient,
  type AuditClient,
  type RetentionClient,
} from './clients';
export {
  createServiceClient,
  type CallOptions,
  type DeepPartial,
  type PromiseMethods,
  type RequestOf,
  type ResponseOf,
  type ServiceClient,
  type ServiceClientBase,
  type ServiceSpec,
  type UnaryMethodName,
  type ServerStreamMethodName,
} from './service-client';
export { type ClientOptions, type KeepaliveOptions, type RetryEvent, type TlsOptions, DEFAULT_DEADLINE_MS } from './options';
export { DEFAULT_RETRY_POLICY, isServiceError, retryDecision, type RetryPolicy } from './retry';
export { resumable, isResumableError, type ResumableIterable, type ResumableOptions } from './resumable';
export {
  BatchRecorder,
  RecorderClosedError,
  RecorderError,
  violationIndexes,
  type BatchSink,
  type OnFull,
  type RecorderOptions,
  type RecorderStats,
} from './recorder';
export {
  ConnectionEventRecorder,
  AuditEventRecorder,
  SecurityEventRecorder,
  StatusReportRecorder,
  HeartbeatRecorder,
  unitBatchId,
  type StatusReportRecorderOptions,
} from './recorders';
export { uuidv7, eventTime } from './ids';
export { decodeBadRequest as badRequestViolations, decodeRetryDelayMs as retryDelayMs, type FieldViolation } from '@mcp/proto';
