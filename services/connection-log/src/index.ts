export { connectionLogEntities } from './entities';
export { createConnectionLogService, DEFAULT_PORT, FULL_NAME, type ConnectionLogService } from './service';
export { DEFAULT_INGEST_LIMITS, type IngestLimits } from '@mcp/runtime';
