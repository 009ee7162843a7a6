import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { RunningService } from '@mcp/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAuditService, startConnectionLogEnv, type ConnectionLogEnv } from './harness';

const EXAMPLES = path.resolve(__dirname, '../../../examples');
let env: ConnectionLogEnv;
let audit: { service: RunningService; address: string };

// examples/dist is compiled by test/global-build.ts.
beforeAll(async () => {
  env = await startConnectionLogEnv();
  audit = await startAuditService(env.db.url);
});
afterAll(async () => {
  await audit?.service.shutdown('test done');
  await env?.close();
});

describe('examples/agent-recorder', () => {
  it('runs: registers its agent and connection, records 3 connection events and 1 audit event, exits', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(EXAMPLES, 'dist/agent-recorder.js')], {
      env: {
        ...process.env,
        MCP_CONNECTION_LOG_ADDRESS: env.address,
        MCP_AUDIT_ADDRESS: audit.address,
        MCP_API_KEY: env.writerToken,
        MCP_DEV_USER_ID: env.fixture.userId,
      },
    });
    const out = JSON.parse(stdout);
    expect(out.events).toMatchObject({ recorded: 3, delivered: 3 });
    expect(out.audit).toMatchObject({ recorded: 1, delivered: 1 });
    expect(await env.count(out.connectionId)).toEqual({ rows: 3, distinctIds: 3, duplicatedIds: 0 });

    // The audit event is in the trail (beside the registry rows connection-log audits itself), stored once,
    // chained, about the example's agent and by the key's service account.
    const { rows: [connection] } = await env.pg.query('SELECT agent_id FROM agent_mcp_connections WHERE id = $1', [out.connectionId]);
    const { rows: trail } = await env.pg.query(
      `SELECT resource_type, resource_id, description, user_id, chain_seq IS NOT NULL AS chained
         FROM audit_logs WHERE action_type = 'agent.tools_used'`,
    );
    expect(trail).toEqual([
      {
        resource_type: 'agent',
        resource_id: connection.agent_id,
        description: 'example agent called 3 tools',
        user_id: env.writerUserId,
        chained: true,
      },
    ]);
  });
});
