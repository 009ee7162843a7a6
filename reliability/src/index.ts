/** Shared helpers of the reliability suite (see each module). */
export { PostgresCluster, type ClusterInfo, type StopMode } from './postgres-cluster';
export { ServiceProcess, SERVICE_PACKAGES, distFile, killAll, type Exit, type ServiceName, type StartOptions } from './service-process';
export { openPool, databaseConnections, type Queryable } from './database';
export { provisionPrincipals, createConnections, createServers, type Principal, type Principals, type ConnectionFixture } from './fixtures';
export { STORED_KEYS, storedCounts, reconcile, type StoredKey, type Reconciliation } from './counting';
export { rssBytes, openFds, mb, RssSampler, type RssSample } from './process-stats';
export { HealthTimeline, type ObservedHealth } from './health';
export {
  FAULT_TOLERANT_RECORDER,
  SteadyProducer,
  auditEventsPath,
  connectionEventsPath,
  eventually,
  heartbeatsPath,
  statusReportsPath,
  type WritePath,
  type WritePathName,
} from './write-paths';
export { Scenario } from './scenario';
export { sustainedLoadSeconds } from './timing';
export {
  BatchLoops,
  auditEventBatches,
  connectionEventBatches,
  heartbeatBatches,
  heartbeatCalls,
  securityEventBatches,
  statusReportBatches,
  type CallFactory,
  type SentCall,
} from './batch-loops';
export { recordResult, readResults, renderReport, SCENARIOS, RESULTS_DIR, REPORT_FILE, type ScenarioResult } from './results';
