/**
 * The recorders of each service, on the generic BatchRecorder: what an item
 * is, how its client-side key is assigned at record() time (so the key names
 * the moment it happened, and every re-send carries it), and which RPC sends
 * a batch.
 */
import { createHash } from 'node:crypto';
import { audit, connectionlog, statussync } from '@mcp/proto';
import { assignAuditEventKey, assignConnectionEventKey, assignSecurityEventKey, type AuditClient, type ConnectionLogClient, type StatusSyncClient } from './clients';
import { uuidv7 } from './ids';
import { BatchRecorder, violationIndexes, type RecorderOptions } from './recorder';
import type { DeepPartial } from './service-client';

const build = <T>(type: { fromPartial(object: never): T }, input: unknown): T => (type.fromPartial as (object: unknown) => T)(input ?? {});

/**
 * Connection events → RecordEvents. Ids (UUIDv7) and timestamps are assigned
 * at record() unless given, so a batch re-sent after a lost answer is stored
 * once; `duplicates` counts the events the service reported as already stored.
 */
export class ConnectionEventRecorder extends BatchRecorder<DeepPartial<connectionlog.ConnectionEvent>, connectionlog.ConnectionEvent> {
  constructor(client: ConnectionLogClient, options: RecorderOptions = {}) {
    super(
      {
        name: 'RecordEvents',
        send: async (events, o) => {
          const res = await client.send('recordEvents', { events }, { deadlineMs: o.deadlineMs, signal: o.signal, retry: false });
          return { duplicates: res.duplicateCount };
        },
        rejectedIndexes: (err, count) => violationIndexes(err, count, 'events'),
      },
      (input) => {
        const event = build(connectionlog.ConnectionEvent, input);
        assignConnectionEventKey(event);
        return event;
      },
      options,
    );
  }
}

/**
 * Audit events → RecordAuditEvents. Ids and created_at are assigned at
 * record(), and trace_id is the trace active at record() (the audited call's),
 * unless given.
 */
export class AuditEventRecorder extends BatchRecorder<DeepPartial<audit.AuditEvent>, audit.AuditEvent> {
  constructor(client: AuditClient, options: RecorderOptions = {}) {
    super(
      {
        name: 'RecordAuditEvents',
        send: async (events, o) => {
          const res = await client.send('recordAuditEvents', { events }, { deadlineMs: o.deadlineMs, signal: o.signal, retry: false });
          return { duplicates: res.duplicateCount };
        },
        rejectedIndexes: (err, count) => violationIndexes(err, count, 'events'),
      },
      (input) => {
        const event = build(audit.AuditEvent, input);
        assignAuditEventKey(event);
        return event;
      },
      options,
    );
  }
}

/** Security events → RecordSecurityEvents, ids and occurred_at assigned at record(). */
export class SecurityEventRecorder extends BatchRecorder<DeepPartial<audit.SecurityEvent>, audit.SecurityEvent> {
  constructor(client: AuditClient, options: RecorderOptions = {}) {
    super(
      {
        name: 'RecordSecurityEvents',
        send: async (events, o) => {
          const res = await client.send('recordSecurityEvents', { events }, { deadlineMs: o.deadlineMs, signal: o.signal, retry: false });
          return { duplicates: res.duplicateCount };
        },
        rejectedIndexes: (err, count) => violationIndexes(err, count, 'events'),
      },
      (input) => {
        const event = build(audit.SecurityEvent, input);
        assignSecurityEventKey(event);
        return event;
      },
      options,
    );
  }
}

interface KeyedReport {
  /** Client key of this report, from which a unit's batch_id is derived. */
  key: string;
  report: statussync.StatusReport;
}

/** A UUID (version 8, RFC 9562 "custom") derived from the keys of a unit: the same unit always gets the same batch_id. */
export function unitBatchId(keys: string[]): string {
  const b = createHash('sha256').update(keys.join('\n')).digest().subarray(0, 16);
  b[6] = 0x80 | (b[6] & 0x0f);
  b[8] = 0x80 | (b[8] & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export interface StatusReportRecorderOptions extends RecorderOptions {
  /** Stored as each row's sync_session_id unless the report sets its own. */
  syncSessionId?: string;
}

/**
 * Status reports → ReportStatusBatch. A batch may hold at most one report per
 * server, so a recorder batch is sent as units: the first report of each
 * server, then the second, … (per-server order kept). Each unit's batch_id
 * (the service's idempotency key) is derived from its reports' client keys,
 * so a re-sent unit is recorded once, and a unit split after a refusal (which
 * stored nothing) gets new ids.
 */
export class StatusReportRecorder extends BatchRecorder<DeepPartial<statussync.StatusReport>, KeyedReport> {
  constructor(client: StatusSyncClient, options: StatusReportRecorderOptions = {}) {
    super(
      {
        name: 'ReportStatusBatch',
        plan: (items) => {
          const units: KeyedReport[][] = [];
          const seen = new Map<string, number>();
          for (const item of items) {
            const n = seen.get(item.report.serverId) ?? 0;
            seen.set(item.report.serverId, n + 1);
            (units[n] ??= []).push(item);
          }
          return units;
        },
        send: async (unit, o) => {
          const res = await client.send(
            'reportStatusBatch',
            { batchId: unitBatchId(unit.map((u) => u.key)), syncSessionId: options.syncSessionId ?? '', reports: unit.map((u) => u.report) },
            { deadlineMs: o.deadlineMs, signal: o.signal, retry: false },
          );
          return { duplicates: res.alreadyRecorded ? unit.length : 0 };
        },
        rejectedIndexes: (err, count) => violationIndexes(err, count, 'reports'),
      },
      (input) => ({ key: uuidv7(), report: build(statussync.StatusReport, input) }),
      options,
    );
  }
}

/**
 * Heartbeats → HeartbeatBatch, many servers per call. Consecutive heartbeats
 * of one server with the same state and health are coalesced into the newest
 * (they would record no transition); a change of state or health is always
 * sent, in order: the n-th run of each server's beats goes into the n-th call
 * of a batch, since a call carries at most one beat per server. Beats of
 * servers the service does not know are rejected (onError), the rest
 * delivered.
 */
export class HeartbeatRecorder extends BatchRecorder<DeepPartial<statussync.HeartbeatRequest>, statussync.HeartbeatRequest> {
  constructor(client: StatusSyncClient, options: RecorderOptions = {}) {
    super(
      {
        name: 'HeartbeatBatch',
        plan: (items) => {
          const units: statussync.HeartbeatRequest[][] = [];
          const runs = new Map<string, { unit: number; last: statussync.HeartbeatRequest }>();
          for (const hb of items) {
            const run = runs.get(hb.serverId);
            const unit = !run ? 0 : run.last.state === hb.state && run.last.health === hb.health ? run.unit : run.unit + 1;
            runs.set(hb.serverId, { unit, last: hb });
            (units[unit] ??= []).push(hb);
          }
          return units;
        },
        send: async (unit, o) => {
          // Within a unit a server's beats are one run: its newest beat stands for them all.
          const position = new Map<string, number>();
          const heartbeats: statussync.HeartbeatRequest[] = [];
          for (const hb of unit) {
            const at = position.get(hb.serverId);
            if (at === undefined) position.set(hb.serverId, heartbeats.push(hb) - 1);
            else heartbeats[at] = hb;
          }
          const res = await client.send('heartbeatBatch', { heartbeats }, { deadlineMs: o.deadlineMs, signal: o.signal, retry: false });
          if (res.unknownServerIndexes.length === 0) return { duplicates: 0 };
          const unknown = new Set(res.unknownServerIndexes.map((i) => heartbeats[i].serverId));
          return {
            duplicates: 0,
            refused: {
              indexes: unit.flatMap((hb, i) => (unknown.has(hb.serverId) ? [i] : [])),
              cause: new Error(`no such server: ${[...unknown].join(', ')}`),
            },
          };
        },
      },
      (input) => build(statussync.HeartbeatRequest, input),
      options,
    );
  }
}
