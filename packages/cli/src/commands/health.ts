import { checkHealth, healthClient } from '../health';
import { printJson } from '../format';
import type { Command } from './common';

export const health: Command = {
  name: 'health',
  summary: 'Asks a server for its health (grpc.health.v1.Health/Check). Exit code 0 only when SERVING.',
  options: {
    service: {
      type: 'string',
      value: '<name>',
      description: 'a fully qualified service, e.g. mcp.connectionlog.v1.ConnectionLogService',
      default: '"" (the whole server)',
    },
  },
  async run(opts, ctx) {
    const service = opts.string('service') ?? '';
    const client = healthClient(ctx.address);
    try {
      const status = await checkHealth(client, service, ctx.deadlineMs);
      if (ctx.json) printJson({ status });
      else console.log(`${ctx.address}${service ? ` ${service}` : ''}: ${status}`);
      return status === 'SERVING' ? 0 : 1;
    } finally {
      client.close();
    }
  },
};
