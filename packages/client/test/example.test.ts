import * as grpc from '@grpc/grpc-js';
import { audit } from '@mcp/proto';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConnectionLogEnv, type ConnectionLogEnv } from './harness';

const EXAMPLES = path.resolve(__dirname, '../../../examples');
let env: ConnectionLogEnv;

// examples/dist is compiled by test/global-build.ts.
beforeAll(async () => {
  env = await startConnectionLogEnv();
});
afterAll(async () => env?.close());

describe('examples/agent-recorder', () => {
  it('runs: registers its agent and connection, records 3 connection events and 1 audit event, exits', async () => {
    // The audit service: a stand-in that keeps what it receives.
    const received: audit.AuditEvent[] = [];
    const server = new grpc.Server();
    server.addService(audit.AuditServiceService, {
      recordAuditEvents: (call: grpc.ServerUnaryCall<audit.RecordAuditEventsRequest, unknown>, cb: grpc.sendUnaryData<audit.RecordAuditEventsResponse>) => {
        received.push(...call.request.events);
        cb(null, { acks: call.request.events.map((e) => ({ id: e.id, createdAt: e.createdAt, alreadyStored: false, chainSequence: '1' })), storedCount: call.request.events.length, duplicateCount: 0 });
      },
    } as unknown as audit.AuditServiceServer);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [path.join(EXAMPLES, 'dist/agent-recorder.js')], {
        env: {
          ...process.env,
          MCP_CONNECTION_LOG_ADDRESS: env.address,
          MCP_AUDIT_ADDRESS: `127.0.0.1:${port}`,
          MCP_API_KEY: env.writerToken,
          MCP_DEV_USER_ID: env.fixture.userId,
        },
      });
      const out = JSON.parse(stdout);
      expect(out.events).toMatchObject({ recorded: 3, delivered: 3 });
      expect(out.audit).toMatchObject({ recorded: 1, delivered: 1 });
      expect(await env.count(out.connectionId)).toEqual({ rows: 3, distinctIds: 3, duplicatedIds: 0 });
      expect(received.map((e) => e.actionType)).toEqual(['agent.tools_used']);
    } finally {
      server.forceShutdown();
    }
  });
});
