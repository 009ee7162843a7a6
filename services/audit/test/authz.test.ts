import { audit } from '@mcp/proto';
import { authorizationSuite } from '@mcp/runtime/dist/authz-testing';
import { afterAll, beforeAll, it } from 'vitest';
import { startHarness } from './harness';

const suite = authorizationSuite({
  definition: audit.AuditServiceService,
  start: () => startHarness(),
  permissions: {
    recordAuditEvents: 'audit:write',
    searchAuditLogs: 'audit:read_own',
    summarizeActivity: 'audit:read_own',
    exportAuditLogs: 'audit:export',
    recordSecurityEvents: 'security_events:write',
    listSecurityEvents: 'security_events:read',
    assignIncident: 'security_events:manage',
    addIncidentNote: 'security_events:manage',
    resolveIncident: 'security_events:manage',
    detectFailedLoginBursts: 'security_events:read',
    verifyIntegrity: 'audit:verify',
    createCheckpoint: 'audit:verify',
    eraseSubject: 'audit:erase',
  },
});

beforeAll(suite.start);
afterAll(suite.stop);
for (const c of suite.cases) it(c.name, c.run);
