export { auditEntities } from './entities';
export { checkpointOptionsFromEnv, createAuditService, DEFAULT_PORT, FULL_NAME, type AuditService, type AuditServiceOptions } from './service';
export { DEFAULT_INGEST_LIMITS, type IngestLimits } from '@mcp/runtime';
export type { CheckpointOptions } from './checkpoints';
