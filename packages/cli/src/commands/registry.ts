import { connectionlog } from '@mcp/proto';
import { printJson } from '../format';
import { connectionLogClient, unary } from '../grpc';
import type { Command } from './common';

export const agentUpsert: Command = {
  name: 'agent upsert',
  summary: 'Registers an agent, or updates it when --id names an existing one (UpsertAgent).',
  options: {
    'user-id': { type: 'string', value: '<uuid>', description: 'owner; must be an existing user', required: true },
    name: { type: 'string', value: '<text>', description: 'agent name', required: true },
    id: { type: 'string', value: '<uuid>', description: 'agent id; omitted: a new agent' },
    description: { type: 'string', value: '<text>', description: 'free text' },
    inactive: { type: 'boolean', description: 'register it as inactive' },
  },
  async run(opts, ctx) {
    const client = connectionLogClient(ctx.address);
    try {
      const res = await unary(
        client,
        client.upsertAgent,
        connectionlog.UpsertAgentRequest,
        {
          agent: {
            id: opts.string('id') ?? '',
            userId: opts.string('user-id'),
            name: opts.string('name'),
            description: opts.string('description'),
            isActive: !opts.boolean('inactive'),
          },
        },
        ctx,
      );
      if (ctx.json) return printJson(connectionlog.UpsertAgentResponse.toJSON(res));
      const a = res.agent!;
      console.log(`agent ${a.id} ${res.created ? 'created' : 'updated'}`);
      console.log(`  name:    ${a.name}`);
      console.log(`  user:    ${a.userId}`);
      console.log(`  active:  ${a.isActive}`);
      if (a.description !== undefined) console.log(`  description: ${a.description}`);
    } finally {
      client.close();
    }
  },
};

export const connectionUpsert: Command = {
  name: 'connection upsert',
  summary: 'Registers an agent <-> MCP server connection, or updates it when --id names an existing one (UpsertConnection).',
  options: {
    'agent-id': { type: 'string', value: '<uuid>', description: 'the agent', required: true },
    'server-id': { type: 'string', value: '<uuid>', description: 'the MCP server instance', required: true },
    'server-name': { type: 'string', value: '<text>', description: 'registers the server under this name when it is unknown' },
    id: { type: 'string', value: '<uuid>', description: 'connection id; omitted: a new connection' },
    status: { type: 'string', value: '<text>', description: 'connection status, e.g. active' },
    inactive: { type: 'boolean', description: 'register it as inactive' },
  },
  async run(opts, ctx) {
    const client = connectionLogClient(ctx.address);
    try {
      const res = await unary(
        client,
        client.upsertConnection,
        connectionlog.UpsertConnectionRequest,
        {
          connection: {
            id: opts.string('id') ?? '',
            agentId: opts.string('agent-id'),
            mcpServerInstanceId: opts.string('server-id'),
            isActive: !opts.boolean('inactive'),
            status: opts.string('status'),
          },
          serverName: opts.string('server-name') ?? '',
        },
        ctx,
      );
      if (ctx.json) return printJson(connectionlog.UpsertConnectionResponse.toJSON(res));
      const c = res.connection!;
      console.log(`connection ${c.id} ${res.created ? 'created' : 'updated'}`);
      console.log(`  agent:   ${c.agentId}`);
      console.log(`  server:  ${c.mcpServerInstanceId}`);
      console.log(`  active:  ${c.isActive}`);
      if (c.status !== undefined) console.log(`  status:  ${c.status}`);
    } finally {
      client.close();
    }
  },
};
