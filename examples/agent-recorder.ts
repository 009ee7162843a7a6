/**
 * An agent-side service recording what it does with an MCP server: connection
 * events and an audit event, batched, retried and delivered once.
 *
 *   npm start                                   # the stack; prints MCP_API_KEY and MCP_DEV_USER_ID
 *   npm run build -w @mcp/client && npm run build --prefix examples
 *   MCP_API_KEY=… MCP_DEV_USER_ID=… node examples/dist/agent-recorder.js
 *
 * Addresses: MCP_CONNECTION_LOG_ADDRESS / MCP_AUDIT_ADDRESS (default 127.0.0.1:50051 / :50053).
 */
import { randomUUID } from 'node:crypto';
import { AuditEventRecorder, ConnectionEventRecorder, createAuditClient, createConnectionLogClient } from '@mcp/client';
import { connectionlog } from '@mcp/proto';

async function main(): Promise<void> {
  // --- the dozen lines: clients (address + key from the environment), recorders, records, close on shutdown.
  const connectionLog = createConnectionLogClient();
  const events = new ConnectionEventRecorder(connectionLog);
  const audit = new AuditEventRecorder(createAuditClient());
  const shutdown = () => Promise.all([events.close(), audit.close()]);
  process.once('SIGTERM', () => void shutdown().then(() => process.exit(0)));

  const { agent } = await connectionLog.upsertAgent({ agent: { userId: process.env.MCP_DEV_USER_ID, name: 'example-agent', isActive: true } });
  const { connection } = await connectionLog.upsertConnection({
    connection: { agentId: agent!.id, mcpServerInstanceId: process.env.MCP_SERVER_ID ?? randomUUID(), isActive: true, status: 'active' },
    serverName: 'example-server',
  });
  for (const tool of ['search_documents', 'read_file', 'fetch_url']) {
    await events.record({
      connectionId: connection!.id,
      eventType: connectionlog.EventType.EVENT_TYPE_USAGE_RECORDED,
      latencyMs: 42,
      requestData: JSON.stringify({ method: 'tools/call', params: { name: tool } }),
      responseData: JSON.stringify({ result: { isError: false } }),
    });
  }
  await audit.record({ actionType: 'agent.tools_used', resourceType: 'agent', resourceId: agent!.id, description: 'example agent called 3 tools' });
  // ---

  const [eventStats, auditStats] = await shutdown();
  console.log(JSON.stringify({ connectionId: connection!.id, events: eventStats, audit: auditStats }));
  connectionLog.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
