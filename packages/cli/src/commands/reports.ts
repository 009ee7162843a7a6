import { connectionlog } from '@mcp/proto';
import { eventTypeName, formatLatency, formatTime, oneLine, printJson, table } from '../format';
import { connectionLogClient, unary } from '../grpc';
import { positiveInteger, type Command } from './common';

/** Calls a paged RPC until `limit` items or the last page. */
async function collect<T>(limit: number, page: (pageSize: number, pageToken: string) => Promise<{ items: T[]; next: string }>) {
  const items: T[] = [];
  let next = '';
  do {
    const res = await page(Math.min(limit - items.length, 1000), next);
    items.push(...res.items);
    next = res.next;
  } while (next && items.length < limit);
  return { items, next };
}

export const agentLogs: Command = {
  name: 'agent-logs',
  summary: "An agent's connection log over the last hours, newest first (GetAgentConnectionLogs).",
  options: {
    'agent-id': { type: 'string', value: '<uuid>', description: 'the agent', required: true },
    hours: { type: 'integer', value: '<n>', description: 'look-back window', default: '24' },
    limit: { type: 'integer', value: '<n>', description: 'at most this many rows', default: '50' },
  },
  async run(opts, ctx, usage) {
    const hours = positiveInteger(opts, 'hours', usage) ?? 0;
    const limit = positiveInteger(opts, 'limit', usage) ?? 50;
    const client = connectionLogClient(ctx.address);
    try {
      const { items, next } = await collect(limit, async (pageSize, pageToken) => {
        const res = await unary(
          client,
          client.getAgentConnectionLogs,
          connectionlog.GetAgentConnectionLogsRequest,
          { agentId: opts.string('agent-id'), hours, pageSize, pageToken },
          ctx,
        );
        return { items: res.logs, next: res.nextPageToken };
      });
      if (ctx.json) return printJson(connectionlog.GetAgentConnectionLogsResponse.toJSON({ logs: items, nextPageToken: next }));
      if (items.length === 0) return console.log('no log rows');
      const rows = items.map((l) => [
        formatTime(l.timestamp),
        eventTypeName(l.eventType),
        l.serverName,
        formatLatency(l.latencyMs),
        [oneLine(l.eventDetails), l.errorData !== undefined ? `error=${oneLine(l.errorData)}` : ''].filter(Boolean).join(' '),
      ]);
      console.log(table(['TIME', 'TYPE', 'SERVER', 'LATENCY', 'DETAILS'], rows));
      console.log(`\n${items.length} row${items.length === 1 ? '' : 's'}${next ? ' (more: raise --limit)' : ''}`);
    } finally {
      client.close();
    }
  },
};

export const activity: Command = {
  name: 'activity',
  summary: 'Connection activity of the last 24 hours across all agents (GetRecentActivity).',
  options: {
    limit: { type: 'integer', value: '<n>', description: 'at most this many rows', default: '50' },
  },
  async run(opts, ctx, usage) {
    const limit = positiveInteger(opts, 'limit', usage) ?? 50;
    const client = connectionLogClient(ctx.address);
    try {
      const { items, next } = await collect(limit, async (pageSize, pageToken) => {
        const res = await unary(client, client.getRecentActivity, connectionlog.GetRecentActivityRequest, { pageSize, pageToken }, ctx);
        return { items: res.activity, next: res.nextPageToken };
      });
      if (ctx.json) return printJson(connectionlog.GetRecentActivityResponse.toJSON({ activity: items, nextPageToken: next }));
      if (items.length === 0) return console.log('no activity in the last 24 hours');
      const rows = items.map((a) => [
        formatTime(a.timestamp),
        eventTypeName(a.eventType),
        a.agentName,
        a.serverName,
        a.userEmail,
        formatLatency(a.latencyMs),
        oneLine(a.eventDetails),
      ]);
      console.log(table(['TIME', 'TYPE', 'AGENT', 'SERVER', 'USER', 'LATENCY', 'DETAILS'], rows));
      console.log(`\n${items.length} row${items.length === 1 ? '' : 's'}${next ? ' (more: raise --limit)' : ''}`);
    } finally {
      client.close();
    }
  },
};
