import { statussync } from '@mcp/proto';
import { authorizationSuite } from '@mcp/runtime/dist/authz-testing';
import { afterAll, beforeAll, it } from 'vitest';
import { startHarness } from './harness';

const suite = authorizationSuite({
  definition: statussync.StatusSyncServiceService,
  start: () => startHarness(),
  permissions: {
    upsertEnvironment: 'registry:write',
    upsertServer: 'registry:write',
    reportStatus: 'status:write',
    reportStatusBatch: 'status:write',
    heartbeat: 'status:write',
    heartbeatBatch: 'status:write',
    getServerStatusHistory: 'status:read',
    listServerHealthHistory: 'status:read',
    getServerDashboard: 'status:read',
    watchServerStatus: 'status:read',
  },
});

beforeAll(suite.start);
afterAll(suite.stop);
for (const c of suite.cases) it(c.name, c.run);
