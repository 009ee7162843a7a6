import * as grpc from '@grpc/grpc-js';
import { statussync } from '@mcp/proto';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, startHarness, status, type Harness } from './harness';

const { StatusSource } = statussync;
let h: Harness;
let a: { ownerId: string; serverId: string };
let b: { ownerId: string; serverId: string };

beforeAll(async () => {
  h = await startHarness();
  a = await createServer(h, 'watch-a');
  b = await createServer(h, 'watch-b');
});
afterAll(async () => h?.close());

/** Opens a watch and collects what arrives; `until(n)` waits for n messages. */
function openWatch(request: Partial<statussync.WatchServerStatusRequest>, token?: string) {
  const received: statussync.WatchServerStatusResponse[] = [];
  const call = h.client.watchServerStatus(statussync.WatchServerStatusRequest.fromPartial(request), h.metadata(token));
  let failure: grpc.ServiceError | undefined;
  call.on('data', (m: statussync.WatchServerStatusResponse) => m.entry && received.push(m)); // the first message only carries the starting cursor
  call.on('error', (e: grpc.ServiceError) => (failure = e));
  return {
    received,
    ids: () => received.map((m) => m.entry!.id),
    error: async (): Promise<grpc.ServiceError> => {
      while (!failure) await new Promise((r) => setTimeout(r, 20));
      return failure;
    },
    async until(n: number, timeoutMs = 10_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (received.length < n) {
        if (Date.now() > deadline) throw new Error(`watch got ${received.length} of ${n} rows`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    cancel: () => call.cancel(),
  };
}

async function report(serverId: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const { entry } = await h.call('reportStatus', {
      report: { serverId, currentStatus: status(i % 2 ? 'RUNNING' : 'ERROR', 'HEALTHY'), source: StatusSource.STATUS_SOURCE_MANUAL },
    });
    ids.push(entry!.id);
  }
  return ids;
}

const settle = () => new Promise((r) => setTimeout(r, 300));

describe('WatchServerStatus', () => {
  it('streams rows committed after it started, in commit order, for all, one server or one owner', async () => {
    await report(a.serverId, 2);
    const all = openWatch({});
    const onlyA = openWatch({ serverId: a.serverId });
    const ownerB = openWatch({ ownerId: b.ownerId });
    await settle();
    const first = await report(a.serverId, 3);
    const second = await report(b.serverId, 2);
    const beat = await h.call('heartbeat', { serverId: b.serverId, health: statussync.ServerHealth.SERVER_HEALTH_DEGRADED });
    await all.until(6);
    await onlyA.until(3);
    await ownerB.until(3);
    await settle();
    expect(all.ids()).toEqual([...first, ...second, beat.entry!.id]);
    expect(onlyA.ids()).toEqual(first);
    expect(ownerB.ids()).toEqual([...second, beat.entry!.id]);
    for (const w of [all, onlyA, ownerB]) w.cancel();
  });

  it('resumes from a cursor with no gap and no duplicate, across a transaction that commits out of order', async () => {
    const watch = openWatch({ serverId: a.serverId });
    await settle();
    const seen = await report(a.serverId, 3);
    await watch.until(3);
    watch.cancel();
    const cursor = watch.received[2].cursor;

    // A writer that started before the next reports and commits after them.
    const slow = new Client({ connectionString: h.db.url });
    await slow.connect();
    await slow.query('BEGIN');
    const {
      rows: [held],
    } = await slow.query(
      `INSERT INTO mcp_server_status_logs (server_id, current_status, source) VALUES ($1, '{"state":"RUNNING","health":"HEALTHY"}', 'manual') RETURNING id`,
      [a.serverId],
    );
    const missed = await report(a.serverId, 2);
    const resumed = openWatch({ serverId: a.serverId, cursor });
    await settle();
    expect(resumed.received).toHaveLength(0); // held back behind the open transaction
    await slow.query(`SELECT pg_notify('mcp_server_status_logs', pg_current_xact_id()::text)`);
    await slow.query('COMMIT');
    await slow.end();
    const later = await report(a.serverId, 1);
    await resumed.until(4);
    await settle();
    expect(resumed.ids()).toEqual([held.id, ...missed, ...later]);
    expect(resumed.ids().some((id) => seen.includes(id))).toBe(false);
    resumed.cancel();
  });

  it('applies row-level security to what a viewer is sent, and rejects bad requests', async () => {
    const viewer = await h.principal('watch-viewer', ['viewer']);
    await h.pg.query(
      `WITH ag AS (INSERT INTO agents (user_id, name) VALUES ($1, 'w-agent') RETURNING id)
       INSERT INTO agent_mcp_connections (agent_id, mcp_server_instance_id) SELECT id, $2 FROM ag`,
      [viewer.userId, b.serverId],
    );
    const watch = openWatch({}, viewer.token);
    await settle();
    await report(a.serverId, 2);
    const visible = await report(b.serverId, 1);
    await watch.until(1);
    await settle();
    expect(watch.ids()).toEqual(visible);
    watch.cancel();

    const both = openWatch({ serverId: a.serverId, ownerId: a.ownerId });
    expect((await both.error()).code).toBe(grpc.status.INVALID_ARGUMENT);
    const badCursor = openWatch({ cursor: 'nope' });
    const err = await badCursor.error();
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toContain('cursor');
  });
});
