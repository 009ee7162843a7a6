import { createHash } from 'node:crypto';
import { connectionlog } from '@mcp/proto';
import { UsageError } from '../args';
import { EVENT_HEADERS, eventRows, printJson, table } from '../format';
import { connectionLogClient, DEFAULT_ADDRESS, unary } from '../grpc';
import { mcpctlInvocation, type Command } from './common';

const { EventType } = connectionlog;

/** The same UUID for the same inputs, so repeated demos reuse one agent, server and connection. */
function stableUuid(...parts: string[]): string {
  const b = createHash('sha256').update(`mcpctl-demo:${parts.join(':')}`).digest();
  b[6] = (b[6] & 0x0f) | 0x50; // version 5 layout (name-based)
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = b.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

const SERVER_NAME = 'demo-filesystem-server';

/** Five events a few hundred milliseconds apart, ending now. */
function demoEvents(connectionId: string, now: number): connectionlog.ConnectionEvent[] {
  const at = (i: number) => new Date(now - (4 - i) * 250);
  const events: Array<Partial<connectionlog.ConnectionEvent>> = [
    {
      eventType: EventType.EVENT_TYPE_CONNECTED,
      eventDetails: `connected to ${SERVER_NAME} over stdio`,
      newStatus: 'active',
      latencyMs: 18,
    },
    {
      eventType: EventType.EVENT_TYPE_USAGE_RECORDED,
      eventDetails: 'tools/call read_file',
      latencyMs: 42,
      bytesTransferred: '2048',
      requestData: JSON.stringify({
        method: 'tools/call',
        params: { name: 'read_file', arguments: { path: '/srv/docs/README.md' } },
        headers: { authorization: 'Bearer demo-secret-token-123', 'content-type': 'application/json' },
      }),
      responseData: JSON.stringify({ content: [{ type: 'text', text: '# Demo\nHello from the MCP server.' }], isError: false }),
      sessionId: 'demo-session',
    },
    {
      eventType: EventType.EVENT_TYPE_ERROR,
      eventDetails: 'tools/call write_file failed',
      latencyMs: 7,
      requestData: JSON.stringify({ method: 'tools/call', params: { name: 'write_file', arguments: { path: '/etc/passwd' } } }),
      errorData: JSON.stringify({ code: -32603, message: 'permission denied: /etc/passwd is outside the allowed paths' }),
      sessionId: 'demo-session',
    },
    {
      eventType: EventType.EVENT_TYPE_STATUS_CHANGE,
      eventDetails: 'degraded after an error',
      oldStatus: 'active',
      newStatus: 'degraded',
    },
    {
      eventType: EventType.EVENT_TYPE_DISCONNECTED,
      eventDetails: 'client closed the session',
      oldStatus: 'degraded',
      newStatus: 'inactive',
    },
  ];
  return events.map((e, i) => connectionlog.ConnectionEvent.fromPartial({ ...e, connectionId, timestamp: at(i) }));
}

export const demo: Command = {
  name: 'demo',
  summary: 'Registers a demo agent and connection, records five varied events, and lists them back.',
  details: [
    'Users are managed by the security layer; `npm start` creates a development user and prints',
    'its id as MCP_DEV_USER_ID. Running the demo again reuses the same agent and connection.',
  ],
  options: {
    'user-id': { type: 'string', value: '<uuid>', description: 'owner of the demo agent', default: '$MCP_DEV_USER_ID' },
  },
  async run(opts, ctx, usage) {
    const userId = opts.string('user-id') ?? process.env.MCP_DEV_USER_ID;
    if (!userId) throw new UsageError('--user-id is required (or set MCP_DEV_USER_ID; `npm start` prints it)', usage);
    const client = connectionLogClient(ctx.address);
    try {
      const started = Date.now();
      const { agent, created: agentCreated } = await unary(
        client,
        client.upsertAgent,
        connectionlog.UpsertAgentRequest,
        {
          agent: {
            id: stableUuid(userId, 'agent'),
            userId,
            name: 'demo-agent',
            description: 'created by mcpctl demo',
            isActive: true,
          },
        },
        ctx,
      );
      const serverId = stableUuid(userId, 'server');
      const { connection, created: connectionCreated } = await unary(
        client,
        client.upsertConnection,
        connectionlog.UpsertConnectionRequest,
        {
          connection: { id: stableUuid(userId, 'connection'), agentId: agent!.id, mcpServerInstanceId: serverId, isActive: true, status: 'active' },
          serverName: SERVER_NAME,
        },
        ctx,
      );
      const events = demoEvents(connection!.id, started);
      const recorded = await unary(client, client.recordEvents, connectionlog.RecordEventsRequest, { events }, ctx);
      const listed = await unary(
        client,
        client.listEvents,
        connectionlog.ListEventsRequest,
        { filter: { connectionIds: [connection!.id], startTime: events[0].timestamp }, pageSize: 100 },
        ctx,
      );
      // Only this run's events: an earlier demo may have recorded some in the same time range.
      const recordedIds = new Set(recorded.acks.map((a) => a.id));
      listed.events = listed.events.filter((e) => recordedIds.has(e.id));
      if (ctx.json) {
        return printJson({
          agent: connectionlog.Agent.toJSON(agent!),
          connection: connectionlog.Connection.toJSON(connection!),
          recorded: connectionlog.RecordEventsResponse.toJSON(recorded),
          events: listed.events.map((e) => connectionlog.ConnectionEvent.toJSON(e)),
        });
      }
      console.log(`agent       ${agent!.id}  demo-agent (${agentCreated ? 'created' : 'already registered'})`);
      console.log(`connection  ${connection!.id}  -> ${SERVER_NAME} (${connectionCreated ? 'created' : 'already registered'})`);
      console.log(`recorded    ${recorded.storedCount} events (${recorded.duplicateCount} duplicate)\n`);
      console.log(table(EVENT_HEADERS, eventRows(listed.events)));
      const usage = listed.events.find((e) => e.eventType === EventType.EVENT_TYPE_USAGE_RECORDED);
      if (usage?.requestData) {
        console.log('\nstored request of the usage_recorded event (the authorization header was masked before storage):');
        console.log(`  ${usage.requestData}`);
      }
      const cli = mcpctlInvocation();
      const address = ctx.address !== (process.env.MCP_CONNECTION_LOG_ADDRESS || DEFAULT_ADDRESS) ? ` --address ${ctx.address}` : '';
      console.log('\nnext:');
      console.log(`  ${cli}${address} events list --connection-id ${connection!.id}`);
      console.log(`  ${cli}${address} events tail --agent-id ${agent!.id}`);
      console.log(`  ${cli}${address} agent-logs --agent-id ${agent!.id}`);
      console.log(`  ${cli}${address} events list --errors-only --since 1h`);
    } finally {
      client.close();
    }
  },
};
