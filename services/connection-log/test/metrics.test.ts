import * as grpc from '@grpc/grpc-js';
import { metrics } from '@opentelemetry/api';
import { captureMetrics } from '@mcp/runtime/dist/testing';
import { connectionlog } from '@mcp/proto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { countLogs, createFixture, expectGrpcError, startHarness, type Fixture, type Harness } from './harness';

// Before the service exists: platformMetrics creates its instruments on first use.
const reader = captureMetrics();

let h: Harness;
let fx: Fixture;

beforeAll(async () => {
  h = await startHarness();
  fx = await createFixture(h, 'metrics');
});
afterAll(async () => {
  await h?.close();
  metrics.disable();
});

/** With a client-assigned key (id, timestamp), so a re-sent event is recognised. */
const event = (connectionId = fx.connectionId) => ({
  id: crypto.randomUUID(),
  timestamp: new Date(),
  connectionId,
  eventType: connectionlog.EventType.EVENT_TYPE_CONNECTED,
});

it('counts the connection-log rows stored, by table: not a retry’s duplicates, not a refused batch', async () => {
  const batch = [event(), event(), event()];
  expect((await h.call('recordEvents', { events: batch })).storedCount).toBe(3);
  const retry = await h.call('recordEvents', { events: [...batch, event()] }); // the acknowledgement was lost
  expect(retry).toMatchObject({ storedCount: 1, duplicateCount: 3 });
  const refused = await expectGrpcError(h.call('recordEvents', { events: [event(), event(crypto.randomUUID())] }));
  expect(refused.code).toBe(grpc.status.FAILED_PRECONDITION);

  expect(await countLogs(h)).toBe(4);
  expect(await reader.counter('mcp.rows.ingested')).toEqual([{ attributes: { table: 'agent_mcp_connection_logs' }, value: 4 }]);
});
