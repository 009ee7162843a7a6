import 'reflect-metadata';
import { createDataSource } from '@mcp/db';
import { runService } from '@mcp/runtime';
import { statusSyncEntities } from './entities';
import { createStatusSyncService, DEFAULT_PORT, DEFAULT_SWEEPER_OPTIONS } from './service';

/** A non-negative integer from the environment, or the default; anything else stops the process at start. */
function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return value;
}

runService({
  serviceName: 'status-sync',
  defaultPort: DEFAULT_PORT,
  createDataSource: (url) => createDataSource({ url, entities: statusSyncEntities, applicationName: 'status-sync', poolSize: 12 }),
  createServices: (deps) => [
    createStatusSyncService({
      ...deps,
      heartbeatSnapshotIntervalSeconds: intFromEnv('HEARTBEAT_SNAPSHOT_INTERVAL_S', 0),
      sweeper: { intervalMs: intFromEnv('STALE_SWEEP_INTERVAL_MS', DEFAULT_SWEEPER_OPTIONS.intervalMs) },
    }),
  ],
});
