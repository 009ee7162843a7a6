import { metrics } from '@opentelemetry/api';
import { captureMetrics } from '@mcp/runtime/dist/testing';
import { audit } from '@mcp/proto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHarness, type Harness } from './harness';

// Before the service exists: platformMetrics creates its instruments on first use.
const reader = captureMetrics();

const { Severity, VerificationStatus } = audit;
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
  metrics.disable();
});

it('counts stored audit and security rows and each verification by result', async () => {
  const events = Array.from({ length: 3 }, (_, i) => ({ id: crypto.randomUUID(), createdAt: new Date(), actionType: 'metrics.row', description: `row ${i}` }));
  expect((await h.call('recordAuditEvents', { events })).storedCount).toBe(3);
  expect((await h.call('recordAuditEvents', { events })).duplicateCount).toBe(3); // a retry stores nothing
  const security = { id: crypto.randomUUID(), eventType: 'port_scan', severity: Severity.SEVERITY_LOW };
  expect((await h.call('recordSecurityEvents', { events: [security] })).storedCount).toBe(1);
  expect((await h.call('recordSecurityEvents', { events: [security] })).duplicateCount).toBe(1);

  expect((await h.call('verifyIntegrity', {})).status).toBe(VerificationStatus.VERIFICATION_STATUS_VERIFIED);
  const past = { startTime: new Date('2001-01-01T00:00:00Z'), endTime: new Date('2001-01-02T00:00:00Z') };
  expect((await h.call('verifyIntegrity', past)).status).toBe(VerificationStatus.VERIFICATION_STATUS_NOTHING_VERIFIED);
  await h.pg.query('BEGIN');
  await h.pg.query('SET LOCAL session_replication_role = replica'); // as an attacker with database access (triggers off)
  await h.pg.query(`UPDATE audit_logs SET action_type = 'innocent' WHERE chain_seq = (SELECT max(chain_seq) FROM audit_logs)`);
  await h.pg.query('COMMIT');
  expect((await h.call('verifyIntegrity', {})).firstBreak?.kind).toBe(audit.BreakKind.BREAK_KIND_CHANGED);

  const ingested = await reader.counter('mcp.rows.ingested');
  expect(ingested).toHaveLength(2);
  expect(ingested).toEqual(
    expect.arrayContaining([
      { attributes: { table: 'audit_logs' }, value: 3 },
      { attributes: { table: 'security_events' }, value: 1 },
    ]),
  );
  const verifications = await reader.counter('mcp.audit.chain.verifications');
  expect(verifications).toHaveLength(3);
  expect(verifications).toEqual(
    expect.arrayContaining([
      { attributes: { result: 'valid' }, value: 1 },
      { attributes: { result: 'nothing_verified' }, value: 1 },
      { attributes: { result: 'changed' }, value: 1 },
    ]),
  );
});
