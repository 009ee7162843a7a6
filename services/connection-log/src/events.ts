import { connectionlog } from '@mcp/proto';
import { Violations, type IngestLimits, type Redactor } from '@mcp/runtime';

const { EventType } = connectionlog;
type ProtoEvent = connectionlog.ConnectionEvent;

/** Proto enum <-> the seed's CHECK list values, both directions. */
export const EVENT_TYPE_TO_DB: ReadonlyMap<connectionlog.EventType, string> = new Map([
  [EventType.EVENT_TYPE_CONNECTED, 'connected'],
  [EventType.EVENT_TYPE_DISCONNECTED, 'disconnected'],
  [EventType.EVENT_TYPE_ERROR, 'error'],
  [EventType.EVENT_TYPE_TESTING, 'testing'],
  [EventType.EVENT_TYPE_STATUS_CHANGE, 'status_change'],
  [EventType.EVENT_TYPE_ACTIVATED, 'activated'],
  [EventType.EVENT_TYPE_DEACTIVATED, 'deactivated'],
  [EventType.EVENT_TYPE_CONFIG_UPDATED, 'config_updated'],
  [EventType.EVENT_TYPE_USAGE_RECORDED, 'usage_recorded'],
]);
export const EVENT_TYPE_FROM_DB: ReadonlyMap<string, connectionlog.EventType> = new Map(
  [...EVENT_TYPE_TO_DB].map(([k, v]) => [v, k]),
);

/** A validated, redacted event ready for insertion. JSON columns are JSON text. */
export interface NewConnectionEvent {
  /** Client-chosen or server-assigned. */
  id: string | undefined;
  connectionId: string;
  eventType: string;
  eventDetails: string | null;
  oldStatus: string | null;
  newStatus: string | null;
  requestData: string | null;
  responseData: string | null;
  errorData: string | null;
  latencyMs: number | null;
  bytesTransferred: string | null;
  timestamp: Date | undefined;
  createdBy: string | null;
  userAgent: string | null;
  ipAddress: string | null;
  sessionId: string | null;
}

const INT32_MAX = 2_147_483_647;
const INT64_MAX = 9_223_372_036_854_775_807n;

/**
 * Validates a whole batch, collecting every problem (`events[i].field`), and
 * redacts secrets from free text and JSON before anything is stored.
 */
export function parseEventBatch(
  events: ProtoEvent[],
  limits: IngestLimits,
  redactor: Redactor,
  now: Date = new Date(),
): NewConnectionEvent[] {
  const v = new Violations();
  if (events.length === 0) v.add('events', 'at least one event is required');
  if (events.length > limits.maxBatchSize) v.add('events', `at most ${limits.maxBatchSize} events per batch`);
  v.throwIfAny();

  const notBefore = new Date(now.getTime() - limits.maxEventAgeMs);
  const notAfter = new Date(now.getTime() + limits.maxFutureSkewMs);
  const seenKeys = new Set<string>();
  const json = { maxBytes: limits.maxJsonBytes, maxDepth: limits.maxJsonDepth };
  const short = { maxLength: 255 };
  const long = { maxLength: limits.maxTextLength };

  const parsed = events.map((e, i): NewConnectionEvent => {
    const f = (name: string): string => `events[${i}].${name}`;
    const id = v.uuid(f('id'), e.id);
    const timestamp = v.timestamp(f('timestamp'), e.timestamp, notBefore, notAfter);
    if (id !== undefined && e.timestamp === undefined) {
      v.add(f('timestamp'), 'required when id is set: (id, timestamp) is the idempotency key');
    }
    if (id !== undefined && timestamp !== undefined) {
      const key = `${id}@${timestamp.getTime()}`;
      if (seenKeys.has(key)) v.add(f('id'), 'duplicate of an earlier event in this batch');
      seenKeys.add(key);
    }
    const requestData = v.json(f('request_data'), e.requestData, json);
    const responseData = v.json(f('response_data'), e.responseData, json);
    const errorData = v.json(f('error_data'), e.errorData, json);
    const stored = (text: string | undefined, parsed: unknown) => (parsed === undefined ? null : redactor.redactJson(text!, parsed));
    const eventDetails = v.text(f('event_details'), e.eventDetails, long);
    return {
      id,
      connectionId: v.uuid(f('connection_id'), e.connectionId, true) ?? '',
      eventType: v.enumValue(f('event_type'), e.eventType, EVENT_TYPE_TO_DB) ?? '',
      eventDetails: eventDetails === undefined ? null : redactor.redactText(eventDetails),
      oldStatus: v.text(f('old_status'), e.oldStatus, short) ?? null,
      newStatus: v.text(f('new_status'), e.newStatus, short) ?? null,
      requestData: stored(e.requestData, requestData),
      responseData: stored(e.responseData, responseData),
      errorData: stored(e.errorData, errorData),
      latencyMs: v.integer(f('latency_ms'), e.latencyMs, 0, INT32_MAX) ?? null,
      bytesTransferred: v.int64(f('bytes_transferred'), e.bytesTransferred, 0n, INT64_MAX) ?? null,
      timestamp,
      createdBy: v.uuid(f('created_by'), e.createdBy) ?? null,
      userAgent: optionalText(v.text(f('user_agent'), e.userAgent, { maxLength: 1000 })),
      ipAddress: v.ipAddress(f('ip_address'), e.ipAddress) ?? null,
      sessionId: optionalText(v.text(f('session_id'), e.sessionId, short)),
    };
  });
  v.throwIfAny();
  return parsed;
}

function optionalText(value: string | undefined): string | null {
  return value === undefined || value === '' ? null : value;
}
