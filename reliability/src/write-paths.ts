/**
 * The four write paths, each driven through the client library's batching
 * recorder (client-assigned keys, unlimited retries of the same batch), and
 * a producer that feeds one at a fixed rate. Every key recorded is kept, so a
 * scenario can count afterwards what was acknowledged and what is stored.
 */
import {
  AuditEventRecorder,
  ConnectionEventRecorder,
  HeartbeatRecorder,
  StatusReportRecorder,
  eventTime,
  uuidv7,
  type AuditClient,
  type BatchRecorder,
  type ConnectionLogClient,
  type DeepPartial,
  type RecorderError,
  type RecorderOptions,
  type RecorderStats,
  type StatusSyncClient,
} from '@mcp/client';
import { audit, connectionlog, statussync } from '@mcp/proto';
import { STORED_KEYS, type StoredKey } from './counting';
import type { ServiceName } from './service-process';

export type WritePathName = 'connection events' | 'status reports' | 'heartbeats' | 'audit events';

export interface WritePath {
  readonly name: WritePathName;
  readonly service: ServiceName;
  readonly key: StoredKey;
  /** Keys of every item record() accepted, in order. */
  readonly recorded: readonly string[];
  /** Items the recorder gave up on (rejected by the service, or abandoned by close()). */
  readonly failures: readonly RecorderError[];
  /** Records one new item; false when the recorder refused it. */
  record(): Promise<boolean>;
  readonly stats: RecorderStats;
  close(timeoutMs?: number): Promise<RecorderStats>;
  /** Keys acknowledged by the service: everything recorded except what was handed to onError. Call after close(). */
  acknowledged(): string[];
}

/** Recorder settings for scenarios that break things: quick re-sends, short attempts, a deep buffer. */
export const FAULT_TOLERANT_RECORDER: RecorderOptions = {
  maxQueueSize: 200_000,
  scheduledDelayMs: 100,
  exportTimeoutMs: 5_000,
  retry: { initialBackoffMs: 50, maxBackoffMs: 1_000 },
};

class RecorderPath<Input, Item> implements WritePath {
  readonly recorded: string[] = [];
  readonly failures: RecorderError[] = [];
  private readonly recorder: BatchRecorder<Input, Item>;

  constructor(
    readonly name: WritePathName,
    readonly service: ServiceName,
    readonly key: StoredKey,
    create: (onError: (e: RecorderError) => void) => BatchRecorder<Input, Item>,
    private readonly next: () => { key: string; input: Input },
    private readonly keyOf: (item: Item) => string,
  ) {
    this.recorder = create((e) => this.failures.push(e));
  }

  async record(): Promise<boolean> {
    const { key, input } = this.next();
    const accepted = await this.recorder.record(input);
    if (accepted) this.recorded.push(key);
    return accepted;
  }

  get stats(): RecorderStats {
    return this.recorder.stats;
  }

  close(timeoutMs = 120_000): Promise<RecorderStats> {
    return this.recorder.close({ timeoutMs });
  }

  acknowledged(): string[] {
    // onError hands over the recorder's own items: this path's Item.
    const given = new Set(this.failures.flatMap((f) => f.items.map((item) => this.keyOf(item as Item))));
    return given.size === 0 ? [...this.recorded] : this.recorded.filter((k) => !given.has(k));
  }
}

const roundRobin = <T>(items: readonly T[]) => {
  let i = 0;
  return () => items[i++ % items.length];
};

/** Connection events (RecordEvents) over `connectionIds`, keyed by their event id. */
export function connectionEventsPath(client: ConnectionLogClient, connectionIds: readonly string[], options: RecorderOptions = FAULT_TOLERANT_RECORDER): WritePath {
  const nextConnection = roundRobin(connectionIds);
  return new RecorderPath<DeepPartial<connectionlog.ConnectionEvent>, connectionlog.ConnectionEvent>(
    'connection events',
    'connection-log',
    STORED_KEYS.connectionEvents,
    (onError) => new ConnectionEventRecorder(client, { ...options, onError }),
    () => {
      const id = uuidv7();
      return {
        key: id,
        input: {
          id,
          timestamp: eventTime(),
          connectionId: nextConnection(),
          eventType: connectionlog.EventType.EVENT_TYPE_USAGE_RECORDED,
          eventDetails: 'reliability',
          latencyMs: 12,
          requestData: JSON.stringify({ method: 'tools/call', params: { name: 'search' } }),
        },
      };
    },
    (event) => event.id,
  );
}

/** Status reports (ReportStatusBatch) over `serverIds`, keyed by `details`. */
export function statusReportsPath(client: StatusSyncClient, serverIds: readonly string[], options: RecorderOptions = FAULT_TOLERANT_RECORDER): WritePath {
  const nextServer = roundRobin(serverIds);
  return new RecorderPath<DeepPartial<statussync.StatusReport>, { key: string; report: statussync.StatusReport }>(
    'status reports',
    'status-sync',
    STORED_KEYS.statusReports,
    (onError) => new StatusReportRecorder(client, { ...options, onError }),
    () => {
      const key = uuidv7();
      return {
        key,
        input: {
          serverId: nextServer(),
          currentStatus: JSON.stringify({ state: 'RUNNING', health: 'HEALTHY' }),
          source: statussync.StatusSource.STATUS_SOURCE_DTMA,
          details: key,
        },
      };
    },
    (item) => item.report.details ?? '',
  );
}

/**
 * Heartbeats (Heartbeat) over `serverIds`. Only a change is stored, so each
 * server's heartbeats alternate between HEALTHY and DEGRADED: every one is a
 * transition and stores one row, carrying its key in heartbeat_data. A
 * re-sent heartbeat finds its state already recorded and stores nothing
 * more. These servers must get no other status writes.
 */
export function heartbeatsPath(client: StatusSyncClient, serverIds: readonly string[], options: RecorderOptions = FAULT_TOLERANT_RECORDER): WritePath {
  const nextServer = roundRobin(serverIds);
  const degraded = new Map<string, boolean>();
  return new RecorderPath<DeepPartial<statussync.HeartbeatRequest>, statussync.HeartbeatRequest>(
    'heartbeats',
    'status-sync',
    STORED_KEYS.heartbeats,
    (onError) => new HeartbeatRecorder(client, { ...options, onError }),
    () => {
      const key = uuidv7();
      const serverId = nextServer();
      const nowDegraded = !degraded.get(serverId);
      degraded.set(serverId, nowDegraded);
      return {
        key,
        input: {
          serverId,
          health: nowDegraded ? statussync.ServerHealth.SERVER_HEALTH_DEGRADED : statussync.ServerHealth.SERVER_HEALTH_HEALTHY,
          cpuUsage: 12.5,
          heartbeatData: JSON.stringify({ rel: key }),
        },
      };
    },
    (hb) => (JSON.parse(hb.heartbeatData ?? '{}') as { rel?: string }).rel ?? '',
  );
}

/** Audit events (RecordAuditEvents), keyed by their id. */
export function auditEventsPath(client: AuditClient, resourceIds: readonly string[], options: RecorderOptions = FAULT_TOLERANT_RECORDER): WritePath {
  const nextResource = roundRobin(resourceIds);
  return new RecorderPath<DeepPartial<audit.AuditEvent>, audit.AuditEvent>(
    'audit events',
    'audit',
    STORED_KEYS.auditEvents,
    (onError) => new AuditEventRecorder(client, { ...options, onError }),
    () => {
      const id = uuidv7();
      return {
        key: id,
        input: {
          id,
          createdAt: eventTime(),
          actionType: 'tool.call',
          resourceType: 'mcp_server',
          resourceId: nextResource(),
          description: 'reliability',
          requestData: JSON.stringify({ tool: 'search' }),
        },
      };
    },
    (event) => event.id,
  );
}

/**
 * Feeds a write path at a fixed rate (items per second) until stopped. With
 * a recorder that blocks when its buffer is full, a producer whose service
 * cannot keep up falls behind (records fewer than rate × time).
 */
export class SteadyProducer {
  private stopped = false;
  private readonly loop: Promise<void>;
  private readonly startedAt = Date.now();
  private produced = 0;

  constructor(
    readonly path: WritePath,
    readonly ratePerSecond: number,
  ) {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const due = Math.floor(((Date.now() - this.startedAt) / 1000) * this.ratePerSecond);
      while (this.produced < due && !this.stopped) {
        await this.path.record();
        this.produced++;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** Polls until `check` holds, or fails after `timeoutMs` naming `what`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
