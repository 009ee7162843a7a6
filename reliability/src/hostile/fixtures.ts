/**
 * A valid request for every method of the four services, over records created
 * here, so that hostile values can be put into one field at a time of an
 * otherwise acceptable call: whatever the answer is then, it is about that field.
 */
import type * as grpc from '@grpc/grpc-js';
import { retention, uuidv7 } from '@mcp/proto';
import { provisionPrincipal } from '@mcp/runtime';
import type { Queryable } from '../database';
import { encodeRequest, method } from './catalog';
import { callRaw } from './raw-call';

export interface FixtureIds {
  adminId: string;
  adminToken: string;
  agentId: string;
  serverId: string;
  connectionId: string;
  environmentId: string;
  /** A user whose personal data EraseSubject may erase. */
  subjectId: string;
  securityEventId: string;
  runId: string;
  holdId: string;
}

const HOUR_MS = 3_600_000;
let sequence = 0;
/** Distinct per call, so that names and idempotency keys never collide between calls. */
const unique = (): string => `${Date.now().toString(36)}-${(sequence += 1)}`;

type Requests = Record<string, (ids: FixtureIds) => Record<string, unknown>>;

/** One valid, freshly keyed request per method (a partial, as `fromPartial` takes it). */
export const VALID_REQUESTS: Requests = {
  RecordEvents: (ids) => ({ events: [connectionEvent(ids)] }),
  StreamEvents: (ids) => ({ sequence: '1', events: [connectionEvent(ids)] }),
  ListEvents: (ids) => ({ filter: eventFilter(ids), pageSize: 10, pageToken: '' }),
  GetAgentConnectionLogs: (ids) => ({ agentId: ids.agentId, hours: 24, pageSize: 10 }),
  GetRecentActivity: () => ({ pageSize: 10 }),
  TailEvents: (ids) => ({ filter: { connectionIds: [ids.connectionId], agentId: ids.agentId, eventTypes: [1] }, cursor: '' }),
  UpsertAgent: (ids) => ({ agent: { id: uuidv7(), userId: ids.adminId, name: `agent-${unique()}`, description: 'hostile-input agent', isActive: true } }),
  UpsertConnection: (ids) => ({
    connection: { id: uuidv7(), agentId: ids.agentId, mcpServerInstanceId: ids.serverId, isActive: true, status: 'active' },
    serverName: '',
  }),
  UpsertEnvironment: () => ({
    environment: {
      id: uuidv7(),
      name: `env-${unique()}`,
      description: 'hostile-input environment',
      environmentType: 1,
      config: '{"region":"local"}',
      resourceLimits: '{"cpu":2}',
      maintenanceWindowStart: new Date(Date.now() + HOUR_MS),
      maintenanceWindowEnd: new Date(Date.now() + 2 * HOUR_MS),
      currentDeploymentVersion: 'v1.2.3',
      isActive: true,
    },
  }),
  UpsertServer: (ids) => ({
    server: {
      id: uuidv7(),
      name: `server-${unique()}`,
      description: 'hostile-input server',
      ownerId: ids.adminId,
      environmentId: ids.environmentId,
      transport: 1,
      endpointUrl: 'http://127.0.0.1:9/mcp',
      command: 'mcp-server --stdio',
      config: '{"tools":["read"]}',
      isEnabled: true,
      cpuLimit: 1,
      memoryLimitMb: 256,
      healthCheckIntervalSeconds: 30,
      healthCheckTimeoutSeconds: 5,
      staleAfterSeconds: 90,
      restartPolicy: 2,
      maxRestarts: 3,
    },
  }),
  ReportStatus: (ids) => ({ report: statusReport(ids), reportId: uuidv7() }),
  ReportStatusBatch: (ids) => ({ batchId: uuidv7(), syncSessionId: uuidv7(), reports: [statusReport(ids)] }),
  Heartbeat: (ids) => heartbeat(ids),
  HeartbeatBatch: (ids) => ({ heartbeats: [heartbeat(ids)] }),
  GetServerStatusHistory: (ids) => ({ serverId: ids.serverId, hours: 24, pageSize: 10 }),
  ListServerHealthHistory: () => ({ pageSize: 10 }),
  GetServerDashboard: (ids) => ({ ownerId: ids.adminId, pageSize: 10 }),
  WatchServerStatus: (ids) => ({ serverId: ids.serverId, cursor: '' }),
  RecordAuditEvents: (ids) => ({ events: [auditEvent(ids)] }),
  SearchAuditLogs: (ids) => ({ filter: auditFilter(ids), pageSize: 10, pageToken: '' }),
  SummarizeActivity: (ids) => ({ userId: ids.adminId, startTime: new Date(Date.now() - HOUR_MS), endTime: new Date() }),
  ExportAuditLogs: (ids) => ({ filter: auditFilter(ids), format: 1, rowsPerChunk: 10, cursor: '' }),
  RecordSecurityEvents: (ids) => ({ events: [securityEvent(ids)] }),
  ListSecurityEvents: () => ({
    filter: {
      severities: [1],
      eventTypes: ['hostile_probe'],
      unresolvedOnly: false,
      startTime: new Date(Date.now() - HOUR_MS),
      endTime: new Date(Date.now() + HOUR_MS),
      minThreatScore: 0,
      statuses: [1],
      assignedTo: '',
    },
    pageSize: 10,
    pageToken: '',
  }),
  AssignIncident: (ids) => ({ eventId: ids.securityEventId, assigneeId: ids.adminId }),
  AddIncidentNote: (ids) => ({ eventId: ids.securityEventId, text: 'looked at it' }),
  ResolveIncident: (ids) => ({ eventId: ids.securityEventId, resolution: 3, resolutionNotes: 'benign probe' }),
  DetectFailedLoginBursts: () => ({ threshold: 5, windowSeconds: 3600 }),
  VerifyIntegrity: () => ({ fromSequence: '0', toSequence: '0' }),
  CreateCheckpoint: () => ({}),
  EraseSubject: (ids) => ({ userId: ids.subjectId, reason: 'GDPR request 42' }),
  RunRetention: () => ({ policy: 'agent_mcp_connection_logs', dryRun: true }),
  ListRuns: () => ({ pageSize: 10, pageToken: '' }),
  GetRun: (ids) => ({ id: ids.runId }),
  ListPolicies: () => ({}),
  UpsertPolicy: () => ({
    policy: { table: 'mcp_server_status_logs', hotDays: 90, archiveBeforeDelete: true, archiveDays: 365, enabled: true, expectedIntervalHours: 26 },
  }),
  PlaceLegalHold: (ids) => ({
    subjectType: 1,
    subjectId: ids.adminId,
    startTime: new Date(Date.now() - 24 * HOUR_MS),
    endTime: new Date(Date.now() + 24 * HOUR_MS),
    reason: 'litigation 7',
  }),
  ReleaseLegalHold: (ids) => ({ id: ids.holdId, reason: 'case closed' }),
  ListLegalHolds: () => ({ includeReleased: true, pageSize: 10, pageToken: '' }),
};

function connectionEvent(ids: FixtureIds): Record<string, unknown> {
  return {
    id: uuidv7(),
    connectionId: ids.connectionId,
    eventType: 1,
    eventDetails: 'connected',
    oldStatus: 'idle',
    newStatus: 'active',
    requestData: '{"tool":"read"}',
    responseData: '{"ok":true}',
    errorData: '{"error":null}',
    latencyMs: 5,
    bytesTransferred: '1024',
    timestamp: new Date(),
    createdBy: ids.adminId,
    userAgent: 'hostile-suite/1',
    ipAddress: '10.1.2.3',
    sessionId: `session-${unique()}`,
  };
}

function heartbeat(ids: FixtureIds): Record<string, unknown> {
  return {
    serverId: ids.serverId,
    state: 3,
    health: 2,
    cpuUsage: 1.5,
    memoryUsage: 100,
    responseTimeMs: 5,
    uptimeSeconds: '100',
    heartbeatData: '{"beat":1}',
  };
}

function eventFilter(ids: FixtureIds): Record<string, unknown> {
  return {
    connectionIds: [ids.connectionId],
    agentId: ids.agentId,
    eventTypes: [1],
    errorsOnly: false,
    startTime: new Date(Date.now() - HOUR_MS),
    endTime: new Date(Date.now() + HOUR_MS),
  };
}

function statusReport(ids: FixtureIds): Record<string, unknown> {
  return {
    serverId: ids.serverId,
    currentStatus: '{"state":"RUNNING","health":"HEALTHY"}',
    previousStatus: '{"state":"STARTING","health":"UNKNOWN"}',
    source: 1,
    details: 'synced',
    healthCheckResult: '{"ok":true}',
    heartbeatData: '{"beat":1}',
    responseTimeMs: 5,
    uptimeSeconds: '100',
    syncSessionId: uuidv7(),
  };
}

function auditEvent(ids: FixtureIds): Record<string, unknown> {
  return {
    id: uuidv7(),
    createdAt: new Date(),
    userId: ids.adminId,
    actionType: 'hostile.test',
    resourceType: 'agent',
    resourceId: ids.agentId,
    mcpServerId: ids.serverId,
    description: 'hostile input probe',
    requestData: '{"q":1}',
    responseData: '{"r":1}',
    statusCode: 200,
    durationMs: 5,
    success: true,
    errorMessage: 'none',
    ipAddress: '10.0.0.1',
    userAgent: 'hostile-suite/1',
    sessionId: `session-${unique()}`,
    traceId: '0123456789abcdef0123456789abcdef',
  };
}

function auditFilter(ids: FixtureIds): Record<string, unknown> {
  return {
    userIds: [ids.adminId],
    actionTypes: ['hostile.test'],
    resourceType: 'agent',
    resourceId: ids.agentId,
    mcpServerId: ids.serverId,
    startTime: new Date(Date.now() - HOUR_MS),
    endTime: new Date(Date.now() + HOUR_MS),
    text: 'probe',
    traceId: '0123456789abcdef0123456789abcdef',
  };
}

function securityEvent(ids: FixtureIds): Record<string, unknown> {
  return {
    id: uuidv7(),
    occurredAt: new Date(),
    eventType: 'hostile_probe',
    severity: 1,
    sourceService: 'hostile-suite',
    userId: ids.adminId,
    ipAddress: '10.0.0.2',
    userAgent: 'hostile-suite/1',
    description: 'probe',
    threatScore: 10,
    indicators: '{"probe":true}',
    countryCode: 'DE',
    city: 'Berlin',
    behaviorSignals: '{"burst":false}',
  };
}

type Call = (methodName: string, request: Record<string, unknown>) => Promise<Buffer>;

export class Fixtures {
  private constructor(
    readonly ids: FixtureIds,
    private readonly call: Call,
  ) {}

  /** Creates the records the valid requests refer to, through SQL and through the services themselves. */
  static async create(pg: Queryable, clientFor: (methodName: string) => grpc.Client, metadata: (token: string) => grpc.Metadata): Promise<Fixtures> {
    const admin = await provisionPrincipal(pg, { username: 'hostile-admin', roles: ['admin'] });
    const subject = await provisionPrincipal(pg, { username: 'hostile-subject', roles: [] });
    const { rows } = await pg.query(
      `WITH a AS (INSERT INTO agents (user_id, name) VALUES ($1, 'hostile-agent') RETURNING id),
            s AS (INSERT INTO mcp_servers (name, owner_id) VALUES ('hostile-server', $1) RETURNING id),
            e AS (INSERT INTO environments (name, environment_type) VALUES ('hostile-env', 'DEVELOPMENT') RETURNING id)
       INSERT INTO agent_mcp_connections (agent_id, mcp_server_instance_id)
       SELECT a.id, s.id FROM a, s RETURNING id AS connection_id, agent_id, mcp_server_instance_id AS server_id, (SELECT id FROM e) AS environment_id`,
      [admin.userId],
    );
    const call: Call = async (name, request) => {
      const outcome = await callRaw(clientFor(name), method(name), [encodeRequest(method(name), request)], metadata(admin.token));
      if (outcome.code !== 0) throw new Error(`fixture ${name} failed: ${outcome.code} ${outcome.details}`);
      return outcome.responses[0];
    };
    const ids: FixtureIds = {
      adminId: admin.userId,
      adminToken: admin.token,
      agentId: rows[0].agent_id,
      serverId: rows[0].server_id,
      connectionId: rows[0].connection_id,
      environmentId: rows[0].environment_id,
      subjectId: subject.userId,
      securityEventId: uuidv7(),
      runId: '',
      holdId: '',
    };
    await call('RecordSecurityEvents', { events: [{ ...securityEvent(ids), id: ids.securityEventId }] });
    const run = retention.RunRetentionResponse.decode(await call('RunRetention', VALID_REQUESTS.RunRetention(ids)));
    const hold = retention.PlaceLegalHoldResponse.decode(await call('PlaceLegalHold', VALID_REQUESTS.PlaceLegalHold(ids)));
    return new Fixtures({ ...ids, runId: run.run!.id, holdId: hold.hold!.id }, call);
  }

  /**
   * A valid request for `methodName`. Resolving an incident and releasing a
   * hold work once per record, so those get a fresh record each time.
   */
  async validRequest(methodName: string): Promise<Record<string, unknown>> {
    const request = VALID_REQUESTS[methodName](this.ids);
    if (methodName === 'ResolveIncident') {
      const eventId = uuidv7();
      await this.call('RecordSecurityEvents', { events: [{ ...securityEvent(this.ids), id: eventId }] });
      return { ...request, eventId };
    }
    if (methodName === 'ReleaseLegalHold') {
      const hold = retention.PlaceLegalHoldResponse.decode(await this.call('PlaceLegalHold', VALID_REQUESTS.PlaceLegalHold(this.ids)));
      return { ...request, id: hold.hold!.id };
    }
    return request;
  }
}
