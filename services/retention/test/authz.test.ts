import { retention } from '@mcp/proto';
import { authorizationSuite } from '@mcp/runtime/dist/authz-testing';
import { afterAll, beforeAll, it } from 'vitest';
import { startHarness } from './harness';

const suite = authorizationSuite({
  definition: retention.RetentionServiceService,
  start: () => startHarness(),
  permissions: {
    runRetention: 'retention:run',
    listRuns: 'retention:read',
    getRun: 'retention:read',
    listPolicies: 'retention:read',
    upsertPolicy: 'retention:manage_policies',
    placeLegalHold: 'legal_hold:manage',
    releaseLegalHold: 'legal_hold:manage',
    listLegalHolds: 'retention:read',
  },
});

beforeAll(suite.start);
afterAll(suite.stop);
for (const c of suite.cases) it(c.name, c.run);
