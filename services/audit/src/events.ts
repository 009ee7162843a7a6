import { audit } from '@mcp/proto';
import { Violations, type IngestLimits, type Redactor } from '@mcp/runtime';

const { Severity, IncidentStatus } = audit;

export const SEVERITY_TO_DB: ReadonlyMap<audit.Severity, string> = new Map([
  [Severity.SEVERITY_LOW, 'LOW'],
  [Severity.SEVERITY_MEDIUM, 'MEDIUM'],
  [Severity.SEVERITY_HIGH, 'HIGH'],
  [Severity.SEVERITY_CRITICAL, 'CRITICAL'],
]);
export const SEVERITY_FROM_DB = invert(SEVERITY_TO_DB);

export const STATUS_TO_DB: ReadonlyMap<audit.IncidentStatus, string> = new Map([
  [IncidentStatus.INCIDENT_STATUS_OPEN, 'OPEN'],
  [IncidentStatus.INCIDENT_STATUS_INVESTIGATING, 'INVESTIGATING'],
  [IncidentStatus.INCIDENT_STATUS_RESOLVED, 'RESOLVED'],
  [IncidentStatus.INCIDENT_STATUS_FALSE_POSITIVE, 'FALSE_POSITIVE'],
]);
export const STATUS_FROM_DB = invert(STATUS_TO_DB);

export const RESOLUTIONS_TO_DB: ReadonlyMap<audit.IncidentStatus, string> = new Map(
  [...STATUS_TO_DB].filter(([, s]) => s === 'RESOLVED' || s === 'FALSE_POSITIVE'),
);

function invert<K, V>(m: ReadonlyMap<K, V>): ReadonlyMap<V, K> {
  return new Map([...m].map(([k, v]) => [v, k]));
}

const INT32_MAX = 2_147_483_647;
const TRACE_ID = /^[0-9a-f]{32}$/;
const COUNTRY_CODE = /^[A-Z]{2}$/;

/** A validated, redacted audit row with its final idempotency key (id, createdAt). */
export interface NewAuditEvent {
  id: string;
  createdAt: Date;
  userId: string | null;
  actionType: string;
  resourceType: string | null;
  resourceId: string | null;
  mcpServerId: string | null;
  description: string | null;
  requestData: string | null;
  responseData: string | null;
  statusCode: number | null;
  durationMs: number | null;
  success: boolean;
  errorMessage: string | null;
  ipAddress: string | null;
  userAgent: string | null;
  sessionId: string | null;
  traceId: string | null;
}

export interface NewSecurityEvent {
  id: string;
  occurredAt: Date;
  eventType: string;
  severity: string;
  sourceService: string | null;
  userId: string | null;
  ipAddress: string | null;
  userAgent: string | null;
  description: string | null;
  threatScore: number | null;
  indicators: string;
  countryCode: string | null;
  city: string | null;
  behaviorSignals: string;
}

interface BatchContext {
  v: Violations;
  limits: IngestLimits;
  now: Date;
  notBefore: Date;
  notAfter: Date;
}

function startBatch(count: number, limits: IngestLimits, now: Date): BatchContext {
  const v = new Violations();
  if (count === 0) v.add('events', 'at least one event is required');
  if (count > limits.maxBatchSize) v.add('events', `at most ${limits.maxBatchSize} events per batch`);
  v.throwIfAny();
  return {
    v,
    limits,
    now,
    notBefore: new Date(now.getTime() - limits.maxEventAgeMs),
    notAfter: new Date(now.getTime() + limits.maxFutureSkewMs),
  };
}

function orNull<T>(value: T | undefined): T | null {
  return value === undefined || value === '' ? null : value;
}

/**
 * Validates a whole batch of audit events, collecting every problem
 * (`events[i].field`), assigns missing ids and times, and redacts secrets from
 * free text and JSON before anything is stored.
 */
export function parseAuditEvents(
  events: audit.AuditEvent[],
  defaults: { userId: string; newId: (atMs: number) => string },
  limits: IngestLimits,
  redactor: Redactor,
  now: Date = new Date(),
): NewAuditEvent[] {
  const b = startBatch(events.length, limits, now);
  const { v } = b;
  const seenKeys = new Set<string>();
  const json = { maxBytes: limits.maxJsonBytes, maxDepth: limits.maxJsonDepth };
  const short = { maxLength: 255 };
  const long = { maxLength: limits.maxTextLength };
  const parsed = events.map((e, i): NewAuditEvent => {
    const f = (name: string): string => `events[${i}].${name}`;
    const id = v.uuid(f('id'), e.id);
    const createdAt = v.timestamp(f('created_at'), e.createdAt, b.notBefore, b.notAfter);
    if (id !== undefined && e.createdAt === undefined) {
      v.add(f('created_at'), 'required when id is set: (id, created_at) is the idempotency key');
    }
    if (id !== undefined && createdAt !== undefined) {
      const key = eventKey(id, createdAt);
      if (seenKeys.has(key)) v.add(f('id'), 'duplicate of an earlier event in this batch');
      seenKeys.add(key);
    }
    const traceId = orNull(v.text(f('trace_id'), e.traceId, { maxLength: 32 }));
    if (traceId !== null && (!TRACE_ID.test(traceId) || /^0+$/.test(traceId))) {
      v.add(f('trace_id'), 'must be 32 lowercase hex digits, not all zero (W3C trace id)');
    }
    const requestData = v.json(f('request_data'), e.requestData, json);
    const responseData = v.json(f('response_data'), e.responseData, json);
    const description = orNull(v.text(f('description'), e.description, long));
    const errorMessage = orNull(v.text(f('error_message'), e.errorMessage, long));
    const at = createdAt ?? now;
    return {
      id: id ?? defaults.newId(at.getTime()),
      createdAt: at,
      userId: v.uuid(f('user_id'), e.userId) ?? defaults.userId,
      actionType: v.text(f('action_type'), e.actionType, { required: true, maxLength: 200 }) ?? '',
      resourceType: orNull(v.text(f('resource_type'), e.resourceType, short)),
      resourceId: orNull(v.text(f('resource_id'), e.resourceId, short)),
      mcpServerId: v.uuid(f('mcp_server_id'), e.mcpServerId) ?? null,
      description: description === null ? null : redactor.redactText(description),
      requestData: requestData === undefined ? null : JSON.stringify(redactor.redact(requestData)),
      responseData: responseData === undefined ? null : JSON.stringify(redactor.redact(responseData)),
      statusCode: v.integer(f('status_code'), e.statusCode, 0, 999) ?? null,
      durationMs: v.integer(f('duration_ms'), e.durationMs, 0, INT32_MAX) ?? null,
      success: e.success ?? true,
      errorMessage: errorMessage === null ? null : redactor.redactText(errorMessage),
      ipAddress: v.ipAddress(f('ip_address'), e.ipAddress) ?? null,
      userAgent: orNull(v.text(f('user_agent'), e.userAgent, { maxLength: 1000 })),
      sessionId: orNull(v.text(f('session_id'), e.sessionId, short)),
      traceId,
    };
  });
  v.throwIfAny();
  return parsed;
}

/** Validates and redacts a batch of security events; JSON objects default to {}. */
export function parseSecurityEvents(
  events: audit.SecurityEvent[],
  newId: (atMs: number) => string,
  limits: IngestLimits,
  redactor: Redactor,
  now: Date = new Date(),
): NewSecurityEvent[] {
  const b = startBatch(events.length, limits, now);
  const { v } = b;
  const seenIds = new Set<string>();
  const json = { maxBytes: limits.maxJsonBytes, maxDepth: limits.maxJsonDepth };
  const jsonObject = (field: string, value: string | undefined): string => {
    const parsed = v.json(field, value, json);
    if (parsed === undefined) return '{}';
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      v.add(field, 'must be a JSON object');
      return '{}';
    }
    return JSON.stringify(redactor.redact(parsed));
  };
  const parsed = events.map((e, i): NewSecurityEvent => {
    const f = (name: string): string => `events[${i}].${name}`;
    const id = v.uuid(f('id'), e.id);
    if (id !== undefined) {
      if (seenIds.has(id)) v.add(f('id'), 'duplicate of an earlier event in this batch');
      seenIds.add(id);
    }
    const occurredAt = v.timestamp(f('occurred_at'), e.occurredAt, b.notBefore, b.notAfter) ?? now;
    const threatScore = e.threatScore;
    if (threatScore !== undefined && !(threatScore >= 0 && threatScore <= 100)) v.add(f('threat_score'), 'must be from 0 to 100');
    const countryCode = orNull(v.text(f('country_code'), e.countryCode, { maxLength: 2 }));
    if (countryCode !== null && !COUNTRY_CODE.test(countryCode)) v.add(f('country_code'), 'must be an ISO 3166-1 alpha-2 code (two capital letters)');
    const description = orNull(v.text(f('description'), e.description, { maxLength: limits.maxTextLength }));
    return {
      id: id ?? newId(occurredAt.getTime()),
      occurredAt,
      eventType: v.text(f('event_type'), e.eventType, { required: true, maxLength: 100 }) ?? '',
      severity: v.enumValue(f('severity'), e.severity, SEVERITY_TO_DB) ?? '',
      sourceService: orNull(v.text(f('source_service'), e.sourceService, { maxLength: 100 })),
      userId: v.uuid(f('user_id'), e.userId) ?? null,
      ipAddress: v.ipAddress(f('ip_address'), e.ipAddress) ?? null,
      userAgent: orNull(v.text(f('user_agent'), e.userAgent, { maxLength: 1000 })),
      description: description === null ? null : redactor.redactText(description),
      // NUMERIC(5,2): two decimals, as the column stores it.
      threatScore: threatScore === undefined ? null : Math.round(threatScore * 100) / 100,
      indicators: jsonObject(f('indicators'), e.indicators),
      countryCode,
      city: orNull(v.text(f('city'), e.city, { maxLength: 200 })),
      behaviorSignals: jsonObject(f('behavior_signals'), e.behaviorSignals),
    };
  });
  v.throwIfAny();
  return parsed;
}

/** Idempotency key of an audit row: millisecond times round-trip through the API. */
export function eventKey(id: string, createdAt: Date): string {
  return `${id.toLowerCase()}@${createdAt.getTime()}`;
}
