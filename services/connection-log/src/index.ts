export { connectionLogEntities } from './entities';
export { ConnectionLogRepository, type KeyedEvent } from './repository';
export { createConnectionLogService, DEFAULT_PORT, FULL_NAME, type ConnectionLogService } from './service';
export { DEFAULT_INGEST_LIMITS, type IngestLimits } from '@mcp/runtime';
