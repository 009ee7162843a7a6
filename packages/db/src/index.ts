export { createDataSource, MIGRATIONS_TABLE, type DataSourceOptions } from './data-source';
export { appliedMigrations, migrateDown, migrateUp, type MigrationResult } from './migrate';
export { migrations } from './migrations';
export { startEmbeddedPostgres, freePort, probePort, type EmbeddedPostgresHandle } from './embedded';
export { checkEntityDrift, type DriftProblem } from './drift';
export { MONITORING_QUERIES, monitoringReport, runMaintenance, type MaintenanceStep, type MonitoringReport, type QueryableDb } from './upkeep';
