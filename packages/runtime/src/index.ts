export {
  AbortedError,
  AlreadyExistsError,
  CancelledError,
  DeadlineExceededError,
  FailedPreconditionError,
  INTERNAL_ERROR_MESSAGE,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  StatusError,
  UnauthenticatedError,
  UnavailableError,
  decodeBadRequest,
  decodeRetryDelayMs,
  sqlState,
  toServiceError,
  type FieldViolation,
} from './errors';
export {
  createCallHandlers,
  type CallContext,
  type CallGuard,
  type CallHandlers,
  type HandlerDeps,
  type ServerStreamWriter,
} from './calls';
export { createLogger, type Logger, type LoggerOptions } from './logger';
export { DEFAULT_REDACTION_POLICY, createRedactor, type RedactionPolicy, type Redactor } from './redaction';
export {
  ConfigError,
  loadConfig,
  type GlobalSecurityPolicy,
  type GrpcSettings,
  type LoadConfigOptions,
  type NetworkSecurity,
  type PlatformConfig,
  type PlatformFileConfig,
  type ServerSettings,
} from './config';
export {
  HEALTH_SERVICE,
  LIVENESS_HEALTH_NAME,
  installShutdownSignals,
  startServer,
  type RunningServer,
  type ServiceRegistration,
  type StartServerOptions,
} from './server';
export {
  APPLICATION_ROLE,
  CommitOutcomeUnknownError,
  databaseReady,
  inTransaction,
  runStatement,
  type IsolationLevel,
  type TransactionOptions,
} from './db';
export { shutdownTelemetry, startTelemetry, telemetryDisabled } from './telemetry';
export { DEFAULT_INGEST_LIMITS, isUuid, Violations, type IngestLimits, type JsonRule, type TextRule } from './input-validation';
export { arrayLiteral, copyTextLine, exactTimestamp, SqlConditions } from './sql';
export { decodePageToken, encodePageToken, keysetPage, pageSize } from './page-token';
export { uuidv7 } from '@mcp/proto';
export { NotificationHub } from './notifications';
export {
  runService,
  startService,
  type RunningService,
  type ServiceDeps,
  type ServiceUnit,
  type StartServiceOptions,
} from './run-service';
export { checkHealth, waitForHealth, waitForServing, type HealthStatus } from './health-client';
export { hasPermission, PERMISSIONS, type Permission, type Principal } from './auth/principal';
export { AUTH_CHANGES_CHANNEL, PlatformGuard, SYSTEM_USER_ID, UnauthenticatedDevGuard, peerAddress } from './auth/guard';
export {
  createRole,
  deleteRole,
  ensureUser,
  findUser,
  grantRole,
  issueApiKey,
  provisionPrincipal,
  recordAdminAction,
  revokeApiKey,
  revokeRole,
  type CustomRole,
  type IssuedKey,
  type RoleDeletion,
} from './auth/admin';
export { generateApiKey, hashApiKey } from './auth/api-keys';
export { recordAudit, type AuditEntry } from './audit-trail';
export { platformMetrics } from './metrics';
export {
  COMMIT_ORDER_HORIZON_CTE,
  CommitOrderStream,
  commitOrderPredicates,
  type CommitCursor,
  type CommitOrderLimits,
  type CommitOrderRow,
  type ReadAfter,
} from './commit-order-stream';
