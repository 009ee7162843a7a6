import 'reflect-metadata';
import { createDataSource } from '@mcp/db';
import { runService } from '@mcp/runtime';
import { auditEntities } from './entities';
import { checkpointOptionsFromEnv, createAuditService, DEFAULT_PORT } from './service';

runService({
  serviceName: 'audit',
  defaultPort: DEFAULT_PORT,
  createDataSource: (url) => createDataSource({ url, entities: auditEntities, applicationName: 'audit', poolSize: 12 }),
  createServices: (deps) => [createAuditService({ ...deps, checkpoint: checkpointOptionsFromEnv(process.env) })],
});
