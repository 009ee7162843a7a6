import 'reflect-metadata';
import { createDataSource } from '@mcp/db';
import { runService } from '@mcp/runtime';
import { retentionEntities } from './entities';
import { createRetentionService, DEFAULT_PORT } from './service';

const batchSize = process.env.RETENTION_BATCH_SIZE ? Number(process.env.RETENTION_BATCH_SIZE) : undefined;

runService({
  serviceName: 'retention',
  defaultPort: DEFAULT_PORT,
  // A run holds one connection and its drop lanes up to three more (executor.ts); the rest serve the other calls.
  createDataSource: (url) => createDataSource({ url, entities: retentionEntities, applicationName: 'retention', poolSize: 6 }),
  createServices: (deps) => [createRetentionService({ ...deps, batchSize })],
});
