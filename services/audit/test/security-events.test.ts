import * as grpc from '@grpc/grpc-js';
import { audit } from '@mcp/proto';
import { decodeBadRequest } from '@mcp/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectGrpcError, startHarness, type Harness } from './harness';

const { Severity, IncidentStatus } = audit;
let h: Harness;
let reporter: { userId: string; token: string };
let analyst: { userId: string; token: string };
let viewer: { userId: string; token: string };

beforeAll(async () => {
  h = await startHarness();
  reporter = await h.principal('ids-sensor', ['service']);
  analyst = await h.principal('analyst', ['auditor']);
  viewer = await h.principal('watcher', ['viewer']);
});
afterAll(async () => h?.close());

async function record(events: Array<Partial<audit.SecurityEvent>>): Promise<string[]> {
  const res = await h.call('recordSecurityEvents', { events }, { token: reporter.token });
  return res.acks.map((a) => a.id);
}

async function listAll(filter: Partial<audit.SecurityEventFilter>): Promise<audit.SecurityEvent[]> {
  const out: audit.SecurityEvent[] = [];
  let pageToken = '';
  do {
    const res = await h.call('listSecurityEvents', { filter, pageSize: 3, pageToken }, { token: analyst.token });
    out.push(...res.events);
    pageToken = res.nextPageToken;
  } while (pageToken);
  return out;
}

async function auditRows(action: string, resourceId: string) {
  const { rows } = await h.pg.query('SELECT user_id, request_data, response_data FROM audit_logs WHERE action_type = $1 AND resource_id = $2', [action, resourceId]);
  return rows;
}

describe('RecordSecurityEvents / ListSecurityEvents', () => {
  it('stores every field, idempotently, and audits the write', async () => {
    const id = crypto.randomUUID();
    const full = {
      id,
      occurredAt: new Date(Date.now() - 1000),
      eventType: 'privilege_escalation',
      severity: Severity.SEVERITY_CRITICAL,
      sourceService: 'ids',
      userId: viewer.userId,
      ipAddress: '198.51.100.7',
      userAgent: 'curl/8',
      description: 'role change outside change window',
      threatScore: 91.25,
      indicators: JSON.stringify({ rule: 'R-17', hits: 3 }),
      countryCode: 'DE',
      city: 'Berlin',
      behaviorSignals: JSON.stringify({ new_device: true }),
    };
    expect((await h.call('recordSecurityEvents', { events: [full] }, { token: reporter.token })).storedCount).toBe(1);
    const retry = await h.call('recordSecurityEvents', { events: [full] }, { token: reporter.token });
    expect(retry).toMatchObject({ storedCount: 0, duplicateCount: 1, acks: [{ id, alreadyStored: true }] });
    const [back] = await listAll({ eventTypes: ['privilege_escalation'] });
    expect({ ...back, indicators: JSON.parse(back.indicators!), behaviorSignals: JSON.parse(back.behaviorSignals!) }).toMatchObject({
      ...full,
      indicators: { rule: 'R-17', hits: 3 },
      behaviorSignals: { new_device: true },
      status: IncidentStatus.INCIDENT_STATUS_OPEN,
      resolved: false,
      notes: [],
    });
    const { rows } = await h.pg.query(`SELECT count(*)::int AS n FROM audit_logs WHERE action_type = 'security_events.record' AND user_id = $1`, [reporter.userId]);
    expect(rows[0].n).toBe(1);
  });

  it('filters by severity, type, time, threat score and unresolved, newest first', async () => {
    const t0 = Date.now() - 600_000;
    const ids = await record([
      { eventType: 'port_scan', severity: Severity.SEVERITY_LOW, threatScore: 10, occurredAt: new Date(t0) },
      { eventType: 'port_scan', severity: Severity.SEVERITY_HIGH, threatScore: 70, occurredAt: new Date(t0 + 1000) },
      { eventType: 'malware', severity: Severity.SEVERITY_HIGH, threatScore: 85, occurredAt: new Date(t0 + 2000) },
      { eventType: 'malware', severity: Severity.SEVERITY_MEDIUM, occurredAt: new Date(t0 + 3000) },
    ]);
    expect((await listAll({ eventTypes: ['port_scan', 'malware'], severities: [Severity.SEVERITY_HIGH] })).map((e) => e.id)).toEqual([ids[2], ids[1]]);
    expect((await listAll({ eventTypes: ['port_scan', 'malware'], minThreatScore: 70 })).map((e) => e.id)).toEqual([ids[2], ids[1]]);
    expect((await listAll({ eventTypes: ['port_scan', 'malware'], startTime: new Date(t0 + 1000), endTime: new Date(t0 + 3000) })).map((e) => e.id)).toEqual([
      ids[2],
      ids[1],
    ]);
    await h.call('resolveIncident', { eventId: ids[3], resolution: IncidentStatus.INCIDENT_STATUS_FALSE_POSITIVE, resolutionNotes: 'test fixture' });
    expect((await listAll({ eventTypes: ['malware'], unresolvedOnly: true })).map((e) => e.id)).toEqual([ids[2]]);
    expect((await listAll({ statuses: [IncidentStatus.INCIDENT_STATUS_FALSE_POSITIVE] })).map((e) => e.id)).toContain(ids[3]);
  });

  it('filters by indicators (JSON containment, through the GIN index) and refuses a filter that is not a JSON object', async () => {
    const ids = await record([
      { eventType: 'ioc_match', severity: Severity.SEVERITY_HIGH, indicators: JSON.stringify({ rule: 'R-90', ips: ['198.51.100.1', '198.51.100.2'], geo: { country: 'NL' } }) },
      { eventType: 'ioc_match', severity: Severity.SEVERITY_HIGH, indicators: JSON.stringify({ rule: 'R-90', ips: ['203.0.113.9'] }) },
      { eventType: 'ioc_match', severity: Severity.SEVERITY_LOW, indicators: JSON.stringify({ rule: 'R-91', ips: ['198.51.100.1'] }) },
      { eventType: 'ioc_match', severity: Severity.SEVERITY_LOW },
    ]);
    const matching = async (indicators: unknown) => (await listAll({ indicatorsContain: JSON.stringify(indicators) })).map((e) => e.id).sort();
    expect(await matching({ rule: 'R-90' })).toEqual([ids[0], ids[1]].sort());
    expect(await matching({ ips: ['198.51.100.1'] })).toEqual([ids[0], ids[2]].sort());
    expect(await matching({ geo: { country: 'NL' } })).toEqual([ids[0]]);
    expect(await matching({ rule: 'R-90', ips: ['203.0.113.9'] })).toEqual([ids[1]]);
    expect(await matching({ rule: 'R-90', ips: ['198.51.100.1', '203.0.113.9'] })).toEqual([]);
    expect(await matching({ rule: 'R-92' })).toEqual([]);
    // Combines with the other filters.
    expect((await listAll({ indicatorsContain: '{"ips":["198.51.100.1"]}', severities: [Severity.SEVERITY_LOW] })).map((e) => e.id)).toEqual([ids[2]]);

    for (const bad of ['{"rule":', '[1]', '"R-90"']) {
      const err = await expectGrpcError(h.call('listSecurityEvents', { filter: { indicatorsContain: bad } }, { token: analyst.token }));
      expect(err.code, bad).toBe(grpc.status.INVALID_ARGUMENT);
      expect(decodeBadRequest(err.metadata).map((v) => v.field), bad).toEqual(['filter.indicators_contain']);
    }

    // The planner would scan a table this small; forbid that to see that the predicate matches the index.
    await h.pg.query('BEGIN');
    await h.pg.query('SET LOCAL enable_seqscan = off');
    const { rows: plan } = await h.pg.query(`EXPLAIN SELECT id FROM security_events s WHERE s.indicators @> $1::jsonb`, ['{"rule":"R-90"}']);
    await h.pg.query('ROLLBACK');
    expect(plan.map((p: { 'QUERY PLAN': string }) => p['QUERY PLAN']).join('\n')).toMatch(/Bitmap Index Scan on idx_security_events_indicators/);
  });

  it('filters by assignee', async () => {
    const ids = await record([
      { eventType: 'triage_probe', severity: Severity.SEVERITY_MEDIUM },
      { eventType: 'triage_probe', severity: Severity.SEVERITY_MEDIUM },
      { eventType: 'triage_probe', severity: Severity.SEVERITY_MEDIUM },
    ]);
    await h.call('assignIncident', { eventId: ids[0], assigneeId: analyst.userId });
    await h.call('assignIncident', { eventId: ids[1], assigneeId: reporter.userId });
    const analysts = await listAll({ assignedTo: analyst.userId });
    expect(analysts.map((e) => e.id)).toContain(ids[0]);
    expect(analysts.map((e) => e.id)).not.toContain(ids[1]);
    expect(analysts.map((e) => e.id)).not.toContain(ids[2]);
    expect(analysts.every((e) => e.assignedTo === analyst.userId)).toBe(true);
    expect((await listAll({ eventTypes: ['triage_probe'], assignedTo: reporter.userId })).map((e) => e.id)).toEqual([ids[1]]);
    expect(await listAll({ assignedTo: viewer.userId })).toEqual([]);
    const bad = await expectGrpcError(h.call('listSecurityEvents', { filter: { assignedTo: 'analyst' } }, { token: analyst.token }));
    expect(decodeBadRequest(bad.metadata).map((v) => v.field)).toEqual(['filter.assigned_to']);
  });

  it('rejects bad input precisely and writes nothing; readers need security_events:read', async () => {
    const before = (await h.pg.query('SELECT count(*)::int AS n FROM security_events')).rows[0].n;
    const cases: Array<[Partial<audit.SecurityEvent>, string]> = [
      [{ eventType: '', severity: Severity.SEVERITY_LOW }, 'events[0].event_type'],
      [{ eventType: 'x', severity: Severity.SEVERITY_UNSPECIFIED }, 'events[0].severity'],
      [{ eventType: 'x', severity: Severity.SEVERITY_LOW, threatScore: 101 }, 'events[0].threat_score'],
      [{ eventType: 'x', severity: Severity.SEVERITY_LOW, indicators: '[1]' }, 'events[0].indicators'],
      [{ eventType: 'x', severity: Severity.SEVERITY_LOW, countryCode: 'de' }, 'events[0].country_code'],
      [{ eventType: 'x', severity: Severity.SEVERITY_LOW, ipAddress: 'host' }, 'events[0].ip_address'],
    ];
    for (const [event, field] of cases) {
      const err = await expectGrpcError(h.call('recordSecurityEvents', { events: [{ eventType: 'ok', severity: Severity.SEVERITY_LOW }, event] }, { token: reporter.token }));
      expect(err.code, field).toBe(grpc.status.INVALID_ARGUMENT);
      expect(decodeBadRequest(err.metadata).map((v) => v.field)).toContain(field.replace('events[0]', 'events[1]'));
    }
    expect((await h.pg.query('SELECT count(*)::int AS n FROM security_events')).rows[0].n).toBe(before);
    const bad = await expectGrpcError(h.call('listSecurityEvents', { filter: { severities: [9 as audit.Severity] } }, { token: analyst.token }));
    expect(decodeBadRequest(bad.metadata).map((v) => v.field)).toEqual(['filter.severities[0]']);
    expect((await expectGrpcError(h.call('listSecurityEvents', {}, { token: viewer.token }))).code).toBe(grpc.status.PERMISSION_DENIED);
  });
});

describe('incident workflow', () => {
  it('assign -> note -> resolve records who, when and why, each step audited', async () => {
    const [id] = await record([{ eventType: 'brute_force', severity: Severity.SEVERITY_HIGH }]);
    const assigned = await h.call('assignIncident', { eventId: id, assigneeId: analyst.userId });
    expect(assigned.event).toMatchObject({ status: IncidentStatus.INCIDENT_STATUS_INVESTIGATING, assignedTo: analyst.userId });
    expect(assigned.event!.assignedAt).toBeInstanceOf(Date);
    const noted = await h.call('addIncidentNote', { eventId: id, text: 'blocked 203.0.113.0/24 at the edge' });
    expect(noted.event!.notes).toEqual([{ at: expect.any(Date), authorId: expect.any(String), text: 'blocked 203.0.113.0/24 at the edge' }]);
    const resolved = await h.call('resolveIncident', { eventId: id, resolution: IncidentStatus.INCIDENT_STATUS_RESOLVED, resolutionNotes: 'credential rotated' });
    expect(resolved.event).toMatchObject({ status: IncidentStatus.INCIDENT_STATUS_RESOLVED, resolved: true, resolutionNotes: 'credential rotated' });
    expect(resolved.event!.resolvedBy).toBe(noted.event!.notes[0].authorId);
    expect(resolved.event!.resolvedAt).toBeInstanceOf(Date);
    expect(await auditRows('incident.assign', id)).toMatchObject([{ request_data: { assignee_id: analyst.userId }, response_data: { status_before: 'OPEN', status_after: 'INVESTIGATING' } }]);
    expect(await auditRows('incident.note', id)).toHaveLength(1);
    expect(await auditRows('incident.resolve', id)).toMatchObject([{ request_data: { resolution: 'RESOLVED', resolution_notes: 'credential rotated' } }]);
  });

  it('refuses steps that do not apply, with precise codes, and changes nothing', async () => {
    const [id] = await record([{ eventType: 'brute_force', severity: Severity.SEVERITY_LOW }]);
    const missing = crypto.randomUUID();
    expect((await expectGrpcError(h.call('assignIncident', { eventId: missing, assigneeId: analyst.userId }))).code).toBe(grpc.status.NOT_FOUND);
    expect((await expectGrpcError(h.call('assignIncident', { eventId: id, assigneeId: crypto.randomUUID() }))).code).toBe(grpc.status.FAILED_PRECONDITION);
    const noWhy = await expectGrpcError(h.call('resolveIncident', { eventId: id, resolution: IncidentStatus.INCIDENT_STATUS_RESOLVED }));
    expect(decodeBadRequest(noWhy.metadata).map((v) => v.field)).toEqual(['resolution_notes']);
    const badResolution = await expectGrpcError(h.call('resolveIncident', { eventId: id, resolution: IncidentStatus.INCIDENT_STATUS_OPEN, resolutionNotes: 'x' }));
    expect(decodeBadRequest(badResolution.metadata).map((v) => v.field)).toEqual(['resolution']);
    await h.call('resolveIncident', { eventId: id, resolution: IncidentStatus.INCIDENT_STATUS_RESOLVED, resolutionNotes: 'done' });
    const again = await expectGrpcError(h.call('resolveIncident', { eventId: id, resolution: IncidentStatus.INCIDENT_STATUS_RESOLVED, resolutionNotes: 'twice' }));
    expect(again.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect((await expectGrpcError(h.call('assignIncident', { eventId: id, assigneeId: analyst.userId }))).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(await auditRows('incident.resolve', id)).toHaveLength(1);
    expect(await auditRows('incident.assign', id)).toHaveLength(0);
    const denied = await expectGrpcError(h.call('addIncidentNote', { eventId: id, text: 'x' }, { token: analyst.token }));
    expect(denied.code).toBe(grpc.status.PERMISSION_DENIED);
  });
});

describe('DetectFailedLoginBursts', () => {
  it('is the seed query with threshold and window as parameters', async () => {
    const now = Date.now();
    const failed = (ip: string, agoMs: number) => ({ eventType: 'failed_login', severity: Severity.SEVERITY_MEDIUM, ipAddress: ip, occurredAt: new Date(now - agoMs) });
    await record([
      ...Array.from({ length: 6 }, (_, i) => failed('192.0.2.10', i * 1000)),
      ...Array.from({ length: 3 }, (_, i) => failed('192.0.2.20', i * 1000)),
      ...Array.from({ length: 5 }, () => failed('192.0.2.30', 2 * 3600 * 1000)),
    ]);
    const seedDefault = await h.call('detectFailedLoginBursts', {}, { token: analyst.token });
    expect(seedDefault.bursts.map((b) => [b.ipAddress, b.failedAttempts])).toEqual([['192.0.2.10', '6']]);
    const wider = await h.call('detectFailedLoginBursts', { threshold: 3, windowSeconds: 3 * 3600 }, { token: analyst.token });
    expect(wider.bursts.map((b) => [b.ipAddress, b.failedAttempts])).toEqual([
      ['192.0.2.10', '6'],
      ['192.0.2.30', '5'],
      ['192.0.2.20', '3'],
    ]);
    const { rows } = await h.pg.query(
      `SELECT host(ip_address) AS ip, COUNT(*)::text AS n FROM security_events
        WHERE event_type = 'failed_login' AND occurred_at >= NOW() - INTERVAL '1 hour' GROUP BY ip_address HAVING COUNT(*) >= 5`,
    );
    expect(rows.map((r) => [r.ip, r.n])).toEqual(seedDefault.bursts.map((b) => [b.ipAddress, b.failedAttempts]));
    const bad = await expectGrpcError(h.call('detectFailedLoginBursts', { threshold: -1, windowSeconds: 10 ** 9 }, { token: analyst.token }));
    expect(decodeBadRequest(bad.metadata).map((v) => v.field)).toEqual(['threshold', 'window_seconds']);
  });
});
