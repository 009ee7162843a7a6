import 'reflect-metadata';
import { createDataSource } from '@mcp/db';
import { runService } from '@mcp/runtime';
import { retentionEntities } from './entities';
import { createRetentionService, DEFAULT_PORT } from './service';

const batchSize = process.env.RETENTION_BATCH_SIZE ? Number(process.env.RETENTION_BATCH_SIZE) : undefined;

runService({
  serviceName: 'retention',
  defaultPort: DEFAULT_PORT,
  createDataSource: (url) => createDataSource({ url, entities: retentionEntities, applicationName: 'retention', poolSize: 4 }),
  createServices: (deps) => [createRetentionService({ ...deps, batchSize })],
});
