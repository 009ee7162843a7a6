export { retentionEntities } from './entities';
export { createRetentionService, DEFAULT_BATCH_SIZE, DEFAULT_PORT, FULL_NAME, type RetentionService } from './service';
