export { statusSyncEntities } from './entities';
export { createStatusSyncService, DEFAULT_PORT, FULL_NAME, type StatusSyncOptions, type StatusSyncService } from './service';
export { DEFAULT_REPORT_LIMITS, type ReportLimits } from './status';
