import 'reflect-metadata';
import { createDataSource } from '@mcp/db';
import { runService } from '@mcp/runtime';
import { connectionLogEntities } from './entities';
import { createConnectionLogService, DEFAULT_PORT } from './service';

runService({
  serviceName: 'connection-log',
  defaultPort: DEFAULT_PORT,
  createDataSource: (url) => createDataSource({ url, entities: connectionLogEntities, applicationName: 'connection-log', poolSize: 12 }),
  createServices: (deps) => [createConnectionLogService(deps)],
});
