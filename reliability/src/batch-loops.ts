/**
 * Concurrent writers that keep calls in flight, one call each at a time, with
 * no retries (each call's outcome is what the scenario observes): what a
 * service is doing when it gets SIGTERM or SIGKILL. Every call's keys and
 * outcome are kept, for counting afterwards.
 */
import * as grpc from '@grpc/grpc-js';
import { eventTime, isServiceError, uuidv7, type AuditClient, type ConnectionLogClient, type StatusSyncClient } from '@mcp/client';
import { audit, connectionlog, statussync } from '@mcp/proto';
import type { StoredKey } from './counting';

export interface SentCall {
  keys: string[];
  startedAt: number;
  endedAt?: number;
  /** undefined while in flight. */
  outcome?: 'acknowledged' | grpc.status;
}

/** One call with fresh keys: the keys it carries and the call itself. */
export type CallFactory = () => { keys: string[]; call: Promise<unknown> };

const NO_RETRY = { retry: false as const, deadlineMs: 60_000 };

export class BatchLoops {
  readonly calls: SentCall[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[];

  /** `factories[i]` feeds loop i; a loop ends at its first failed call, or on stop(). */
  constructor(
    readonly key: StoredKey,
    factories: CallFactory[],
  ) {
    this.loops = factories.map((next) => this.loop(next));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  /** Resolves when every loop has ended (each one after its first failure, e.g. once the service is gone). */
  finished(): Promise<void> {
    return Promise.all(this.loops).then(() => undefined);
  }

  get acknowledgedCalls(): SentCall[] {
    return this.calls.filter((c) => c.outcome === 'acknowledged');
  }

  get failedCalls(): SentCall[] {
    return this.calls.filter((c) => c.outcome !== undefined && c.outcome !== 'acknowledged');
  }

  acknowledged(): string[] {
    return this.acknowledgedCalls.flatMap((c) => c.keys);
  }

  unacknowledged(): string[] {
    return this.failedCalls.flatMap((c) => c.keys);
  }

  /** Status codes of the failed calls, by name, e.g. { UNAVAILABLE: 6 }. */
  failureCodes(): Record<string, number> {
    const codes: Record<string, number> = {};
    for (const c of this.failedCalls) {
      const name = grpc.status[c.outcome as grpc.status] ?? String(c.outcome);
      codes[name] = (codes[name] ?? 0) + 1;
    }
    return codes;
  }

  private async loop(next: CallFactory): Promise<void> {
    while (!this.stopped) {
      const { keys, call } = next();
      const sent: SentCall = { keys, startedAt: Date.now() };
      this.calls.push(sent);
      try {
        await call;
        sent.outcome = 'acknowledged';
      } catch (err) {
        sent.outcome = isServiceError(err) ? err.code : grpc.status.UNKNOWN;
      } finally {
        sent.endedAt = Date.now();
      }
      if (sent.outcome !== 'acknowledged') return;
    }
  }
}

/** RecordEvents of `size` events spread over `connectionIds`. */
export function connectionEventBatches(client: ConnectionLogClient, connectionIds: readonly string[], size: number): CallFactory {
  return () => {
    const events = Array.from({ length: size }, (_, i) => ({
      id: uuidv7(),
      timestamp: eventTime(),
      connectionId: connectionIds[i % connectionIds.length],
      eventType: connectionlog.EventType.EVENT_TYPE_USAGE_RECORDED,
      eventDetails: 'reliability batch',
      requestData: JSON.stringify({ method: 'tools/call', i }),
    }));
    return { keys: events.map((e) => e.id), call: client.recordEvents({ events }, NO_RETRY) };
  };
}

/** RecordAuditEvents of `size` events. */
export function auditEventBatches(client: AuditClient, size: number): CallFactory {
  return () => {
    const events = Array.from({ length: size }, (_, i) => ({
      id: uuidv7(),
      createdAt: eventTime(),
      actionType: 'tool.call',
      resourceType: 'tool',
      resourceId: `tool-${i}`,
      requestData: JSON.stringify({ i }),
    }));
    return { keys: events.map((e) => e.id), call: client.recordAuditEvents({ events }, NO_RETRY) };
  };
}

/** RecordSecurityEvents of `size` events. */
export function securityEventBatches(client: AuditClient, size: number): CallFactory {
  return () => {
    const events = Array.from({ length: size }, (_, i) => ({
      id: uuidv7(),
      occurredAt: eventTime(),
      eventType: 'reliability.batch',
      severity: audit.Severity.SEVERITY_LOW,
      sourceService: 'reliability',
      indicators: JSON.stringify({ i }),
    }));
    return { keys: events.map((e) => e.id), call: client.recordSecurityEvents({ events }, NO_RETRY) };
  };
}

/** ReportStatusBatch with one report per server (keys in `details`). */
export function statusReportBatches(client: StatusSyncClient, serverIds: readonly string[]): CallFactory {
  return () => {
    const reports = serverIds.map((serverId) => ({
      serverId,
      currentStatus: JSON.stringify({ state: 'RUNNING', health: 'HEALTHY' }),
      source: statussync.StatusSource.STATUS_SOURCE_DTMA,
      details: uuidv7(),
    }));
    return { keys: reports.map((r) => r.details), call: client.reportStatusBatch({ batchId: uuidv7(), reports }, NO_RETRY) };
  };
}

/**
 * Heartbeat calls over `serverIds`, each server alternating HEALTHY and
 * DEGRADED so that every heartbeat is a transition storing its key. The
 * servers must be this factory's alone: two writers beating one server
 * concurrently could commit in the other order and record no transition.
 */
export function heartbeatCalls(client: StatusSyncClient, serverIds: readonly string[]): CallFactory {
  let n = 0;
  return () => {
    const serverId = serverIds[n % serverIds.length];
    const health = Math.floor(n / serverIds.length) % 2 === 0 ? statussync.ServerHealth.SERVER_HEALTH_DEGRADED : statussync.ServerHealth.SERVER_HEALTH_HEALTHY;
    n++;
    const key = uuidv7();
    return { keys: [key], call: client.heartbeat({ serverId, health, heartbeatData: JSON.stringify({ rel: key }) }, NO_RETRY) };
  };
}

/**
 * HeartbeatBatch with one beat per server, all servers turning DEGRADED in
 * one call and HEALTHY in the next: every beat is a transition storing its
 * key in heartbeat_data. As with heartbeatCalls, the servers must be this
 * factory's alone.
 */
export function heartbeatBatches(client: StatusSyncClient, serverIds: readonly string[]): CallFactory {
  let n = 0;
  return () => {
    const health = n++ % 2 === 0 ? statussync.ServerHealth.SERVER_HEALTH_DEGRADED : statussync.ServerHealth.SERVER_HEALTH_HEALTHY;
    const keys = serverIds.map(() => uuidv7());
    const heartbeats = serverIds.map((serverId, i) => ({ serverId, health, heartbeatData: JSON.stringify({ rel: keys[i] }) }));
    return { keys, call: client.heartbeatBatch({ heartbeats }, NO_RETRY) };
  };
}
