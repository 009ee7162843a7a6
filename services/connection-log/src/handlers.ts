import { trace } from '@opentelemetry/api';
import { connectionlog } from '@mcp/proto';
import {
  decodePageToken,
  encodePageToken,
  inTransaction,
  keysetPage,
  NotFoundError,
  FailedPreconditionError,
  pageSize,
  recordAudit,
  uuidv7,
  Violations,
  type CallContext,
  type Redactor,
  type ServerStreamWriter,
} from '@mcp/runtime';
import type { DataSource } from 'typeorm';
import { EVENT_TYPE_FROM_DB, EVENT_TYPE_TO_DB } from './events';
import type { EventRecorder, RecordResult } from './recorder';
import type {
  ActivityRepository,
  ConnectionLogRepository,
  ConnectionLogRow,
  EventQuery,
  RegistryRepository,
  TimeCursor,
} from './repository';
import type { EventTail } from './tail';

type ListEventsRequest = connectionlog.ListEventsRequest;

export interface ConnectionLogHandlerDeps {
  dataSource: DataSource;
  recorder: EventRecorder;
  tail: EventTail;
  logs: ConnectionLogRepository;
  activity: ActivityRepository;
  registry: RegistryRepository;
  redactor: Redactor;
  /** Batches a StreamEvents call may have in flight (committing) at once. */
  streamMaxInFlight: number;
}

const MAX_LOOKBACK_HOURS = 24 * 366;

/** Proto <-> domain for every RPC of mcp.connectionlog.v1.ConnectionLogService. */
export class ConnectionLogHandlers {
  constructor(private readonly deps: ConnectionLogHandlerDeps) {}

  async recordEvents(req: connectionlog.RecordEventsRequest, ctx: CallContext): Promise<connectionlog.RecordEventsResponse> {
    return this.deps.recorder.record(req.events, ctx);
  }

  /**
   * Batches are committed concurrently up to `streamMaxInFlight` and
   * acknowledged in order. The next request is read only when a slot is free,
   * so a slow database pushes back on the client through HTTP/2 flow control.
   */
  async streamEvents(
    requests: AsyncIterable<connectionlog.StreamEventsRequest>,
    stream: ServerStreamWriter<connectionlog.StreamEventsResponse>,
    ctx: CallContext,
  ): Promise<void> {
    const inFlight: Array<{ sequence: string; result: Promise<RecordResult> }> = [];
    // The stream's span carries its totals (each batch's own size is on its log line and ack).
    const totals = { batches: 0, events: 0, stored: 0 };
    const span = trace.getActiveSpan();
    const settleOldest = async (): Promise<void> => {
      const { sequence, result } = inFlight.shift()!;
      let recorded: RecordResult;
      try {
        recorded = await result;
      } catch (err) {
        // Acknowledge what the later in-flight batches committed, then fail.
        const rest = await Promise.allSettled(inFlight.splice(0).map((b) => b.result.then((r) => ({ ...r, sequence: b.sequence }))));
        for (const r of rest) if (r.status === 'fulfilled') await stream.write(r.value);
        if (err instanceof Error) err.message = `batch sequence ${sequence}: ${err.message}`;
        throw err;
      }
      totals.batches += 1;
      totals.events += recorded.acks.length;
      totals.stored += recorded.storedCount;
      span?.setAttributes({ 'mcp.stream.batches': totals.batches, 'mcp.stream.events': totals.events, 'mcp.stream.stored': totals.stored });
      await stream.write({ sequence, ...recorded });
    };
    // Each batch is acknowledged as soon as it commits (in order), not when the
    // client sends more: a client may wait for an ack before its next batch.
    let acked: Promise<void> = Promise.resolve();
    const unacked: Promise<void>[] = [];
    for await (const req of requests) {
      const result = this.deps.recorder.record(req.events, ctx);
      result.catch(() => undefined); // observed in settleOldest
      inFlight.push({ sequence: req.sequence, result });
      acked = acked.then(settleOldest);
      acked.catch(() => undefined); // observed below, or after the loop
      unacked.push(acked);
      if (unacked.length >= this.deps.streamMaxInFlight) await unacked.shift();
    }
    await acked;
  }

  async listEvents(req: ListEventsRequest, ctx: CallContext): Promise<connectionlog.ListEventsResponse> {
    const v = new Violations();
    const query = parseFilter(req.filter, v);
    v.throwIfAny();
    const scope = { rpc: 'ListEvents', query };
    const cursor = req.pageToken ? decodePageToken<TimeCursor>(req.pageToken, scope) : undefined;
    const size = pageSize(req.pageSize);
    const rows = await inTransaction(this.deps.dataSource, ctx, (q) => this.deps.logs.listEvents(q, query, cursor, size + 1), {
      readAs: ctx.principal,
    });
    const { page, nextPageToken } = keysetPage(rows, size, (last) => encodePageToken({ ts: last.cursor_ts, id: last.id }, scope));
    return { events: page.map(toEventMessage), nextPageToken };
  }

  async getAgentConnectionLogs(
    req: connectionlog.GetAgentConnectionLogsRequest,
    ctx: CallContext,
  ): Promise<connectionlog.GetAgentConnectionLogsResponse> {
    const v = new Violations();
    const agentId = v.uuid('agent_id', req.agentId, true);
    const hours = v.integer('hours', req.hours === 0 ? 24 : req.hours, 1, MAX_LOOKBACK_HOURS);
    v.throwIfAny();
    const scope = { rpc: 'GetAgentConnectionLogs', agentId, hours };
    const token = req.pageToken ? decodePageToken<TimeCursor & { since: string }>(req.pageToken, scope) : undefined;
    const size = pageSize(req.pageSize);
    const { rows, since } = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      if (!(await this.deps.activity.agentExists(q, agentId!))) throw new NotFoundError(`agent ${agentId} not found`);
      const windowStart = token?.since ?? (await this.deps.activity.windowStart(q, hours!));
      return { since: windowStart, rows: await this.deps.activity.agentConnectionLogs(q, agentId!, windowStart, token, size + 1) };
    }, { readAs: ctx.principal });
    const { page, nextPageToken } = keysetPage(rows, size, (last) => encodePageToken({ ts: last.cursor_ts, id: last.id, since }, scope));
    return {
      logs: page.map((r) => ({
        id: r.id,
        connectionId: r.connection_id,
        timestamp: r.timestamp,
        eventType: EVENT_TYPE_FROM_DB.get(r.event_type) ?? connectionlog.EventType.EVENT_TYPE_UNSPECIFIED,
        eventDetails: r.event_details ?? undefined,
        serverName: r.server_name,
        latencyMs: r.latency_ms ?? undefined,
        errorData: r.error_data ?? undefined,
      })),
      nextPageToken,
    };
  }

  async getRecentActivity(req: connectionlog.GetRecentActivityRequest, ctx: CallContext): Promise<connectionlog.GetRecentActivityResponse> {
    const scope = { rpc: 'GetRecentActivity' };
    const token = req.pageToken ? decodePageToken<TimeCursor & { since: string }>(req.pageToken, scope) : undefined;
    const size = pageSize(req.pageSize);
    const { rows, since } = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      const windowStart = token?.since ?? (await this.deps.activity.windowStart(q, 24));
      return { since: windowStart, rows: await this.deps.activity.recentActivity(q, windowStart, token, size + 1) };
    }, { readAs: ctx.principal });
    const { page, nextPageToken } = keysetPage(rows, size, (last) => encodePageToken({ ts: last.cursor_ts, id: last.id, since }, scope));
    return {
      activity: page.map((r) => ({
        id: r.id,
        timestamp: r.timestamp,
        eventType: EVENT_TYPE_FROM_DB.get(r.event_type) ?? connectionlog.EventType.EVENT_TYPE_UNSPECIFIED,
        eventDetails: r.event_details ?? undefined,
        agentName: r.agent_name,
        serverName: r.server_name,
        latencyMs: r.latency_ms ?? undefined,
        userEmail: r.user_email,
      })),
      nextPageToken,
    };
  }

  async tailEvents(
    req: connectionlog.TailEventsRequest,
    stream: ServerStreamWriter<connectionlog.TailEventsResponse>,
    ctx: CallContext,
  ): Promise<void> {
    const v = new Violations();
    const query = parseFilter(req.filter, v);
    v.throwIfAny();
    await this.deps.tail.run(query, req.cursor, stream, ctx, toEventMessage);
  }

  async upsertAgent(req: connectionlog.UpsertAgentRequest, ctx: CallContext): Promise<connectionlog.UpsertAgentResponse> {
    const v = new Violations();
    const a = req.agent;
    if (!a) v.add('agent', 'required');
    const id = v.uuid('agent.id', a?.id) ?? uuidv7();
    const userId = v.uuid('agent.user_id', a?.userId) ?? ctx.principal.userId;
    const name = v.text('agent.name', a?.name, { required: true, maxLength: 200 });
    const description = v.text('agent.description', a?.description, { maxLength: 2000 });
    v.throwIfAny();
    const row = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      if (!(await this.deps.registry.userExists(q, userId))) throw new FailedPreconditionError(`agent.user_id: unknown user ${userId}`);
      const agent = await this.deps.registry.upsertAgent(q, {
        id,
        user_id: userId,
        name: name!,
        description: description || null,
        is_active: a!.isActive,
      });
      await recordAudit(q, ctx, {
        action: agent.created ? 'registry.agent_create' : 'registry.agent_update',
        resourceType: 'agent',
        resourceId: agent.id,
        description: `agent ${agent.name} of user ${agent.user_id}${agent.is_active ? '' : ' (inactive)'}`,
      }, this.deps.redactor);
      return agent;
    });
    return {
      agent: { id: row.id, userId: row.user_id, name: row.name, description: row.description ?? undefined, isActive: row.is_active },
      created: row.created,
    };
  }

  async upsertConnection(req: connectionlog.UpsertConnectionRequest, ctx: CallContext): Promise<connectionlog.UpsertConnectionResponse> {
    const v = new Violations();
    const c = req.connection;
    if (!c) v.add('connection', 'required');
    const id = v.uuid('connection.id', c?.id) ?? uuidv7();
    const agentId = v.uuid('connection.agent_id', c?.agentId, true);
    const serverId = v.uuid('connection.mcp_server_instance_id', c?.mcpServerInstanceId, true);
    const status = v.text('connection.status', c?.status, { maxLength: 100 });
    const serverName = v.text('server_name', req.serverName, { maxLength: 200 });
    v.throwIfAny();
    const row = await inTransaction(this.deps.dataSource, ctx, async (q) => {
      const owner = await this.deps.registry.agentOwner(q, agentId!);
      if (!owner) throw new FailedPreconditionError(`connection.agent_id: unknown agent ${agentId}`);
      if (!(await this.deps.registry.serverExists(q, serverId!))) {
        if (!serverName) {
          throw new FailedPreconditionError(
            `connection.mcp_server_instance_id: unknown server ${serverId} (register it, or pass server_name)`,
          );
        }
        await this.deps.registry.registerServer(q, serverId!, serverName, owner);
      }
      const connection = await this.deps.registry.upsertConnection(q, {
        id,
        agent_id: agentId!,
        mcp_server_instance_id: serverId!,
        is_active: c!.isActive,
        status: status || null,
      });
      await recordAudit(q, ctx, {
        action: connection.created ? 'registry.connection_create' : 'registry.connection_update',
        resourceType: 'agent_mcp_connection',
        resourceId: connection.id,
        mcpServerId: connection.mcp_server_instance_id,
        description: `agent ${connection.agent_id} to MCP server ${connection.mcp_server_instance_id}${connection.is_active ? '' : ' (inactive)'}`,
      }, this.deps.redactor);
      return connection;
    });
    return {
      connection: {
        id: row.id,
        agentId: row.agent_id,
        mcpServerInstanceId: row.mcp_server_instance_id,
        isActive: row.is_active,
        status: row.status ?? undefined,
      },
      created: row.created,
    };
  }
}

export function parseFilter(filter: connectionlog.EventFilter | undefined, v: Violations): EventQuery {
  if (!filter) return {};
  const connectionIds = filter.connectionIds.map((id, i) => v.uuid(`filter.connection_ids[${i}]`, id, true) ?? '');
  const eventTypes = filter.eventTypes.map((t, i) => v.enumValue(`filter.event_types[${i}]`, t, EVENT_TYPE_TO_DB) ?? '');
  if (filter.startTime && filter.endTime && filter.startTime.getTime() >= filter.endTime.getTime()) {
    v.add('filter.end_time', 'must be after start_time');
  }
  return {
    connectionIds: connectionIds.length > 0 ? connectionIds : undefined,
    agentId: v.uuid('filter.agent_id', filter.agentId),
    // errors_only narrows to 'error' (an empty result if event_types excludes it).
    eventTypes: filter.errorsOnly
      ? eventTypes.length === 0 || eventTypes.includes('error')
        ? ['error']
        : ['__none__']
      : eventTypes.length > 0
        ? eventTypes
        : undefined,
    startTime: filter.startTime,
    endTime: filter.endTime,
  };
}

export function toEventMessage(r: ConnectionLogRow): connectionlog.ConnectionEvent {
  return {
    id: r.id,
    connectionId: r.connection_id,
    agentId: r.agent_id,
    eventType: EVENT_TYPE_FROM_DB.get(r.event_type) ?? connectionlog.EventType.EVENT_TYPE_UNSPECIFIED,
    eventDetails: r.event_details ?? undefined,
    oldStatus: r.old_status ?? undefined,
    newStatus: r.new_status ?? undefined,
    requestData: r.request_data ?? undefined,
    responseData: r.response_data ?? undefined,
    errorData: r.error_data ?? undefined,
    latencyMs: r.latency_ms ?? undefined,
    bytesTransferred: r.bytes_transferred ?? undefined,
    timestamp: r.timestamp,
    createdBy: r.created_by ?? undefined,
    userAgent: r.user_agent ?? undefined,
    ipAddress: r.ip_address ?? undefined,
    sessionId: r.session_id ?? undefined,
  };
}

