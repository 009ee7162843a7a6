import { metrics } from '@opentelemetry/api';
import * as grpc from '@grpc/grpc-js';
import { captureMetrics } from '@mcp/runtime/dist/testing';
import { statussync } from '@mcp/proto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, expectGrpcError, startHarness, status, type Harness } from './harness';

// Before the service exists: platformMetrics creates its instruments on first use.
const reader = captureMetrics();

const { ServerState, ServerHealth, StatusSource } = statussync;
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
  metrics.disable();
});

it('counts the history rows and transitions that committed, from heartbeats, reports and the sweeper', async () => {
  const { serverId } = await createServer(h, 'metrics-a', { staleAfterSeconds: 30 });
  const { serverId: other } = await createServer(h, 'metrics-b');
  const beat = { serverId, state: ServerState.SERVER_STATE_RUNNING, health: ServerHealth.SERVER_HEALTH_HEALTHY };
  expect((await h.call('heartbeat', beat)).transitionRecorded).toBe(true);
  expect((await h.call('heartbeat', beat)).entry).toBeUndefined(); // steady: nothing written

  const report = { serverId, source: StatusSource.STATUS_SOURCE_DTMA, currentStatus: status('RUNNING', 'DEGRADED') };
  const reportId = crypto.randomUUID();
  await h.call('reportStatus', { reportId, report });
  await h.call('reportStatus', { reportId, report }); // retry: nothing stored
  await h.call('reportStatus', { report }); // stored, but no change
  // Rolled back (one server unknown): nothing counted.
  const unknown = { ...report, serverId: crypto.randomUUID() };
  const batch = h.call('reportStatusBatch', { batchId: crypto.randomUUID(), reports: [{ ...report, serverId: other }, unknown] });
  expect((await expectGrpcError(batch)).code).toBe(grpc.status.FAILED_PRECONDITION);

  await h.pg.query(`UPDATE mcp_servers SET last_heartbeat_at = now() - interval '31 seconds' WHERE id = $1`, [serverId]);
  expect(await h.unit.sweeper.sweepOnce()).toHaveLength(1);

  expect(await reader.counter('mcp.rows.ingested')).toEqual([{ attributes: { table: 'mcp_server_status_logs' }, value: 4 }]);
  const transitions = await reader.counter('mcp.heartbeat.transitions');
  expect(transitions).toHaveLength(3);
  expect(transitions).toEqual(
    expect.arrayContaining([
      { attributes: { source: 'heartbeat', health: 'HEALTHY' }, value: 1 },
      { attributes: { source: 'dtma', health: 'DEGRADED' }, value: 1 },
      { attributes: { source: 'system', health: 'UNHEALTHY' }, value: 1 },
    ]),
  );
});
