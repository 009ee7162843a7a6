import { serverSpans, telemetry } from './span-capture'; // first: it patches @grpc/grpc-js before the harness loads it
import * as grpc from '@grpc/grpc-js';
import { statussync } from '@mcp/proto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, startHarness, status, type Harness } from './harness';

const { ServerState, ServerHealth, StatusSource } = statussync;
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
  await telemetry.shutdown();
});

async function eventually<T>(read: () => T, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 10_000;
  while (!done(read()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return read();
}

it('batch spans carry the batch size and what it stored', async () => {
  const ids = (await Promise.all([0, 1, 2].map((i) => createServer(h, `traced-${i}`)))).map((s) => s.serverId);
  const beats = () =>
    h.call('heartbeatBatch', {
      heartbeats: ids.map((serverId) => ({ serverId, state: ServerState.SERVER_STATE_RUNNING, health: ServerHealth.SERVER_HEALTH_HEALTHY })),
    });
  await beats(); // three transitions
  await beats(); // steady: nothing stored
  const reports = ids.slice(0, 2).map((serverId) => ({ serverId, source: StatusSource.STATUS_SOURCE_DTMA, currentStatus: status('RUNNING', 'DEGRADED') }));
  const batch = { batchId: crypto.randomUUID(), reports };
  await h.call('reportStatusBatch', batch);
  await h.call('reportStatusBatch', batch); // a retry stores nothing

  expect(serverSpans('HeartbeatBatch').map((s) => s.attributes)).toEqual([
    expect.objectContaining({ 'mcp.batch.size': 3, 'mcp.batch.stored': 3, 'mcp.batch.transitions': 3 }),
    expect.objectContaining({ 'mcp.batch.size': 3, 'mcp.batch.stored': 0, 'mcp.batch.transitions': 0 }),
  ]);
  expect(serverSpans('ReportStatusBatch').map((s) => s.attributes)).toEqual([
    expect.objectContaining({ 'mcp.batch.size': 2, 'mcp.batch.stored': 2 }),
    expect.objectContaining({ 'mcp.batch.size': 2, 'mcp.batch.stored': 0 }),
  ]);
});

it('a watch span carries the rows it sent and ends, whether the client cancels or the call fails', async () => {
  const { serverId } = await createServer(h, 'traced-watch');
  const rows: statussync.StatusLogEntry[] = [];
  const watch = h.client.watchServerStatus(statussync.WatchServerStatusRequest.fromPartial({ serverId }), h.metadata());
  watch.on('data', (m: statussync.WatchServerStatusResponse) => m.entry && rows.push(m.entry));
  const cancelled = new Promise<grpc.ServiceError>((resolve) => watch.on('error', resolve));
  await eventually(() => serverSpans('WatchServerStatus'), (spans) => spans.length === 1);
  await new Promise((r) => setTimeout(r, 300)); // the watch has taken its starting position
  for (const health of [ServerHealth.SERVER_HEALTH_HEALTHY, ServerHealth.SERVER_HEALTH_DEGRADED]) await h.call('heartbeat', { serverId, health });
  await eventually(() => rows.length, (n) => n === 2);
  watch.cancel();
  expect((await cancelled).code).toBe(grpc.status.CANCELLED);
  const [span] = serverSpans('WatchServerStatus');
  // Ended, so it is exported: a cancelled stream emits no 'finish', and the runtime reports its status instead.
  await eventually(() => span.ended, (ended) => ended);
  expect(span.attributes).toMatchObject({ 'mcp.stream.rows': 2, 'rpc.grpc.status_code': grpc.status.CANCELLED });

  const rejected = h.client.watchServerStatus(statussync.WatchServerStatusRequest.fromPartial({ cursor: 'not-a-cursor' }), h.metadata());
  rejected.on('data', () => undefined);
  expect((await new Promise<grpc.ServiceError>((resolve) => rejected.on('error', resolve))).code).toBe(grpc.status.INVALID_ARGUMENT);
  const failed = (await eventually(() => serverSpans('WatchServerStatus'), (spans) => spans[1]?.ended === true))[1];
  expect(failed).toMatchObject({ ended: true, attributes: expect.objectContaining({ 'mcp.stream.rows': 0 }) });
});
