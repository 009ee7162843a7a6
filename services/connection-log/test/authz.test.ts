import { connectionlog } from '@mcp/proto';
import { authorizationSuite } from '@mcp/runtime/dist/authz-testing';
import { afterAll, beforeAll, it } from 'vitest';
import { startHarness } from './harness';

const suite = authorizationSuite({
  definition: connectionlog.ConnectionLogServiceService,
  start: () => startHarness(),
  permissions: {
    recordEvents: 'connection_logs:write',
    streamEvents: 'connection_logs:write',
    listEvents: 'connection_logs:read',
    getAgentConnectionLogs: 'connection_logs:read',
    getRecentActivity: 'connection_logs:read',
    tailEvents: 'connection_logs:read',
    upsertAgent: 'registry:write',
    upsertConnection: 'registry:write',
  },
});

beforeAll(suite.start);
afterAll(suite.stop);
for (const c of suite.cases) it(c.name, c.run);
