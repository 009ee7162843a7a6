import { statussync } from '@mcp/proto';
import { Violations, type Redactor } from '@mcp/runtime';

const { StatusSource, ServerState, ServerHealth, Transport, EnvironmentType, RestartPolicy } = statussync;

function bothWays<E extends number>(pairs: Array<[E, string]>): { toDb: ReadonlyMap<E, string>; fromDb: ReadonlyMap<string, E> } {
  return { toDb: new Map(pairs), fromDb: new Map(pairs.map(([k, v]) => [v, k])) };
}

/** Proto enums <-> the CHECK list values of the seed tables. */
export const SOURCE = bothWays<statussync.StatusSource>([
  [StatusSource.STATUS_SOURCE_DTMA, 'dtma'],
  [StatusSource.STATUS_SOURCE_HEARTBEAT, 'heartbeat'],
  [StatusSource.STATUS_SOURCE_MANUAL, 'manual'],
  [StatusSource.STATUS_SOURCE_SYSTEM, 'system'],
]);
export const STATE = bothWays<statussync.ServerState>([
  [ServerState.SERVER_STATE_PENDING, 'PENDING'],
  [ServerState.SERVER_STATE_STARTING, 'STARTING'],
  [ServerState.SERVER_STATE_RUNNING, 'RUNNING'],
  [ServerState.SERVER_STATE_STOPPING, 'STOPPING'],
  [ServerState.SERVER_STATE_STOPPED, 'STOPPED'],
  [ServerState.SERVER_STATE_ERROR, 'ERROR'],
  [ServerState.SERVER_STATE_MAINTENANCE, 'MAINTENANCE'],
]);
export const HEALTH = bothWays<statussync.ServerHealth>([
  [ServerHealth.SERVER_HEALTH_UNKNOWN, 'UNKNOWN'],
  [ServerHealth.SERVER_HEALTH_HEALTHY, 'HEALTHY'],
  [ServerHealth.SERVER_HEALTH_DEGRADED, 'DEGRADED'],
  [ServerHealth.SERVER_HEALTH_UNHEALTHY, 'UNHEALTHY'],
]);
export const TRANSPORT = bothWays<statussync.Transport>([
  [Transport.TRANSPORT_STDIO, 'stdio'],
  [Transport.TRANSPORT_SSE, 'sse'],
  [Transport.TRANSPORT_STREAMABLE_HTTP, 'streamable_http'],
  [Transport.TRANSPORT_WEBSOCKET, 'websocket'],
]);
export const ENVIRONMENT_TYPE = bothWays<statussync.EnvironmentType>([
  [EnvironmentType.ENVIRONMENT_TYPE_DEVELOPMENT, 'DEVELOPMENT'],
  [EnvironmentType.ENVIRONMENT_TYPE_STAGING, 'STAGING'],
  [EnvironmentType.ENVIRONMENT_TYPE_PRODUCTION, 'PRODUCTION'],
]);
export const RESTART_POLICY = bothWays<statussync.RestartPolicy>([
  [RestartPolicy.RESTART_POLICY_NEVER, 'never'],
  [RestartPolicy.RESTART_POLICY_ON_FAILURE, 'on-failure'],
  [RestartPolicy.RESTART_POLICY_ALWAYS, 'always'],
]);

/** The table status history rows go to (the `table` of the rows-ingested metric). */
export const STATUS_LOG_TABLE = 'mcp_server_status_logs';

/** `state` and `health` of a history row's status JSON (a previous status may lack them). */
export function stateAndHealth(json: string | null): { state?: string; health?: string } {
  if (!json) return {};
  const { state, health } = JSON.parse(json) as { state?: string; health?: string };
  return { state, health };
}

export interface ReportLimits {
  maxBatchSize: number;
  maxJsonBytes: number;
  maxJsonDepth: number;
  maxTextLength: number;
}

export const DEFAULT_REPORT_LIMITS: ReportLimits = {
  maxBatchSize: 1000,
  maxJsonBytes: 64 * 1024,
  maxJsonDepth: 32,
  maxTextLength: 10_000,
};

export const INT32_MAX = 2_147_483_647;
const INT64_MAX = 9_223_372_036_854_775_807n;
/** mcp_servers.cpu_usage is NUMERIC(6,2), memory_usage NUMERIC(12,2). */
const CPU_USAGE_MAX = 9999.99;
const MEMORY_USAGE_MAX = 9_999_999_999.99;

/** A validated, redacted report ready for insertion. JSON columns are JSON text. */
export interface NewStatusReport {
  serverId: string;
  currentStatus: string;
  /** Null: taken from the server's current status inside the writing statement. */
  previousStatus: string | null;
  source: string;
  details: string | null;
  healthCheckResult: string | null;
  heartbeatData: string | null;
  responseTimeMs: number | null;
  uptimeSeconds: string | null;
  syncSessionId: string | null;
}

/**
 * Validates reports, collecting every problem (`<prefix>.field`), and redacts
 * secrets from free text and JSON before anything is stored.
 */
export function parseReports(
  reports: statussync.StatusReport[],
  prefix: (i: number) => string,
  limits: ReportLimits,
  redactor: Redactor,
  v: Violations,
): NewStatusReport[] {
  const json = { maxBytes: limits.maxJsonBytes, maxDepth: limits.maxJsonDepth };
  const seenServers = new Map<string, number>();
  return reports.map((r, i): NewStatusReport => {
    const f = (name: string): string => `${prefix(i)}.${name}`;
    const serverId = v.uuid(f('server_id'), r.serverId, true) ?? '';
    if (serverId && seenServers.has(serverId)) v.add(f('server_id'), `same server as ${prefix(seenServers.get(serverId)!)}: at most one report per server`);
    seenServers.set(serverId, i);
    const current = statusObject(v, f('current_status'), r.currentStatus, json, true);
    const previous = statusObject(v, f('previous_status'), r.previousStatus, json, false);
    const details = v.text(f('details'), r.details, { maxLength: limits.maxTextLength });
    const redactedJson = (field: string, value: string | undefined): string | null => {
      const parsed = v.json(f(field), value, json);
      return parsed === undefined ? null : JSON.stringify(redactor.redact(parsed));
    };
    return {
      serverId,
      currentStatus: current === undefined ? '' : JSON.stringify(redactor.redact(current)),
      previousStatus: previous === undefined ? null : JSON.stringify(redactor.redact(previous)),
      source: v.enumValue(f('source'), r.source, SOURCE.toDb) ?? '',
      details: details ? redactor.redactText(details) : null,
      healthCheckResult: redactedJson('health_check_result', r.healthCheckResult),
      heartbeatData: redactedJson('heartbeat_data', r.heartbeatData),
      responseTimeMs: v.integer(f('response_time_ms'), r.responseTimeMs, 0, INT32_MAX) ?? null,
      uptimeSeconds: v.int64(f('uptime_seconds'), r.uptimeSeconds, 0n, INT64_MAX) ?? null,
      syncSessionId: v.uuid(f('sync_session_id'), r.syncSessionId) ?? null,
    };
  });
}

/**
 * A status JSON object. `state` and `health` must be values of
 * mcp_servers.status and .health; the current status must carry both
 * (they become the server's columns), a previous status may omit them.
 */
function statusObject(
  v: Violations,
  field: string,
  text: string | undefined,
  rule: { maxBytes: number; maxDepth: number },
  required: boolean,
): Record<string, unknown> | undefined {
  if (text === undefined || text === '') {
    if (required) v.add(field, 'required');
    return undefined;
  }
  const before = v.count;
  const parsed = v.json(field, text, rule);
  if (v.count > before) return undefined;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    v.add(field, 'must be a JSON object');
    return undefined;
  }
  const status = parsed as Record<string, unknown>;
  const checks: Array<[string, ReadonlyMap<string, unknown>]> = [
    ['state', STATE.fromDb],
    ['health', HEALTH.fromDb],
  ];
  for (const [key, allowed] of checks) {
    const value = status[key];
    if (value === undefined && !required) continue;
    if (typeof value !== 'string' || !allowed.has(value)) {
      v.add(`${field}.${key}`, `must be one of ${[...allowed.keys()].join(', ')}`);
      return undefined;
    }
  }
  return status;
}

export interface HeartbeatInput {
  serverId: string;
  state: string | null;
  health: string | null;
  cpuUsage: number | null;
  memoryUsage: number | null;
  responseTimeMs: number | null;
  uptimeSeconds: string | null;
  heartbeatData: string | null;
}

/** Validates one heartbeat, its problems named `field(name)`, and redacts its JSON. */
function heartbeatInput(
  req: statussync.HeartbeatRequest,
  field: (name: string) => string,
  limits: ReportLimits,
  redactor: Redactor,
  v: Violations,
): HeartbeatInput {
  const serverId = v.uuid(field('server_id'), req.serverId, true);
  const optionalEnum = <E extends number>(name: string, value: E, allowed: ReadonlyMap<E, string>): string | null =>
    value === 0 ? null : (v.enumValue(field(name), value, allowed) ?? null);
  const heartbeatData = v.json(field('heartbeat_data'), req.heartbeatData, { maxBytes: limits.maxJsonBytes, maxDepth: limits.maxJsonDepth });
  return {
    serverId: serverId ?? '',
    state: optionalEnum('state', req.state, STATE.toDb),
    health: optionalEnum('health', req.health, HEALTH.toDb),
    cpuUsage: boundedNumber(v, field('cpu_usage'), req.cpuUsage, CPU_USAGE_MAX),
    memoryUsage: boundedNumber(v, field('memory_usage'), req.memoryUsage, MEMORY_USAGE_MAX),
    responseTimeMs: v.integer(field('response_time_ms'), req.responseTimeMs, 0, INT32_MAX) ?? null,
    uptimeSeconds: v.int64(field('uptime_seconds'), req.uptimeSeconds, 0n, INT64_MAX) ?? null,
    heartbeatData: heartbeatData === undefined ? null : JSON.stringify(redactor.redact(heartbeatData)),
  };
}

export function parseHeartbeat(req: statussync.HeartbeatRequest, limits: ReportLimits, redactor: Redactor): HeartbeatInput {
  const v = new Violations();
  const parsed = heartbeatInput(req, (name) => name, limits, redactor, v);
  v.throwIfAny();
  return parsed;
}

/** 1..maxBatchSize heartbeats, at most one per server; problems named `heartbeats[i].field`. */
export function parseHeartbeatBatch(req: statussync.HeartbeatBatchRequest, limits: ReportLimits, redactor: Redactor): HeartbeatInput[] {
  const v = new Violations();
  if (req.heartbeats.length === 0) v.add('heartbeats', 'at least one heartbeat is required');
  if (req.heartbeats.length > limits.maxBatchSize) v.add('heartbeats', `at most ${limits.maxBatchSize} heartbeats per batch`);
  v.throwIfAny();
  const seenServers = new Map<string, number>();
  const parsed = req.heartbeats.map((hb, i) => {
    const beat = heartbeatInput(hb, (name) => `heartbeats[${i}].${name}`, limits, redactor, v);
    const earlier = seenServers.get(beat.serverId);
    if (earlier === undefined) seenServers.set(beat.serverId, i);
    else if (beat.serverId) v.add(`heartbeats[${i}].server_id`, `same server as heartbeats[${earlier}]: at most one heartbeat per server`);
    return beat;
  });
  v.throwIfAny();
  return parsed;
}

/** A finite number from 0 to `max` (the precision of the NUMERIC column it goes to). */
export function boundedNumber(v: Violations, field: string, value: number | undefined, max: number): number | null {
  if (value === undefined) return null;
  if (!Number.isFinite(value) || value < 0 || value > max) {
    v.add(field, `must be a number from 0 to ${max}`);
    return null;
  }
  return value;
}
