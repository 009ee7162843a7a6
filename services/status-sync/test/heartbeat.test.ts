import * as grpc from '@grpc/grpc-js';
import { createDataSource } from '@mcp/db';
import { statussync } from '@mcp/proto';
import { decodeBadRequest, startService, waitForServing, type RunningService } from '@mcp/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStatusSyncService, statusSyncEntities, type StatusSyncService } from '../src';
import type { StatusLogRow } from '../src/repository';
import { countLogs, createServer, expectGrpcError, startHarness, type Harness } from './harness';

const { ServerState, ServerHealth } = statussync;
const RUNNING = ServerState.SERVER_STATE_RUNNING;
const HEALTHY = ServerHealth.SERVER_HEALTH_HEALTHY;
const DEGRADED = ServerHealth.SERVER_HEALTH_DEGRADED;
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h?.close());

/** Makes a server look silent for `seconds` (its last heartbeat moved into the past). */
async function silence(serverIds: string[], seconds: number): Promise<void> {
  await h.pg.query(`UPDATE mcp_servers SET last_heartbeat_at = now() - make_interval(secs => $2) WHERE id = ANY($1::uuid[])`, [serverIds, seconds]);
}

async function systemRows(serverId: string): Promise<Array<{ current_status: { health: string }; details: string }>> {
  const { rows } = await h.pg.query(`SELECT current_status, details FROM mcp_server_status_logs WHERE server_id = $1 AND source = 'system'`, [serverId]);
  return rows;
}

describe('Heartbeat', () => {
  it('writes no row for identical beats and exactly one per real transition, and says which', async () => {
    const { serverId } = await createServer(h, 'beat-steady');
    const beat = (health: statussync.ServerHealth, cpu: number) =>
      h.call('heartbeat', { serverId, state: RUNNING, health, cpuUsage: cpu, memoryUsage: 512.5, responseTimeMs: 4, uptimeSeconds: '60' });
    const first = await beat(HEALTHY, 1);
    expect(first).toMatchObject({ transitionRecorded: true, snapshotRecorded: false, state: RUNNING, health: HEALTHY });
    expect(JSON.parse(first.entry!.previousStatus!)).toEqual({ state: 'PENDING', health: 'UNKNOWN' });
    const steady = [];
    for (let i = 0; i < 20; i++) steady.push(await beat(HEALTHY, 2 + i));
    expect(steady.every((r) => !r.transitionRecorded && !r.snapshotRecorded && r.entry === undefined)).toBe(true);
    expect(await countLogs(h, serverId)).toBe(1);
    const degraded = await beat(DEGRADED, 50);
    expect(degraded.transitionRecorded).toBe(true);
    expect(degraded.entry).toMatchObject({ source: statussync.StatusSource.STATUS_SOURCE_HEARTBEAT, responseTimeMs: 4, uptimeSeconds: '60' });
    await beat(DEGRADED, 51);
    // Metrics and last-seen move with every beat; the history does not.
    const { rows } = await h.pg.query('SELECT cpu_usage::float8 AS cpu, memory_usage::float8 AS mem, health FROM mcp_servers WHERE id = $1', [serverId]);
    expect(rows[0]).toEqual({ cpu: 51, mem: 512.5, health: 'DEGRADED' });
    expect(await countLogs(h, serverId)).toBe(2);
    const { rows: audits } = await h.pg.query(`SELECT count(*)::int AS n FROM audit_logs WHERE action_type = 'status.transition' AND resource_id = $1`, [serverId]);
    expect(audits[0].n).toBe(2);
  });

  it('moves last-seen and the current metrics with every beat, single or batched, steady or not', async () => {
    const { serverId } = await createServer(h, 'beat-last-seen');
    // Timestamps as text: a Date would drop the microseconds that tell two quick beats apart.
    const lastSeen = async () =>
      (
        await h.pg.query(
          `SELECT last_heartbeat_at::text AS heartbeat, last_activity_at::text AS activity,
                  cpu_usage::float8 AS cpu, memory_usage::float8 AS memory
             FROM mcp_servers WHERE id = $1`,
          [serverId],
        )
      ).rows[0];
    const expectMoved = async (beat: (metrics: { cpuUsage: number; memoryUsage: number }) => Promise<unknown>, cpu: number, memory: number) => {
      const before = await lastSeen();
      await beat({ cpuUsage: cpu, memoryUsage: memory });
      const { rows } = await h.pg.query(
        `SELECT last_heartbeat_at > coalesce($2::timestamptz, '-infinity') AS heartbeat,
                last_activity_at > coalesce($3::timestamptz, '-infinity') AS activity
           FROM mcp_servers WHERE id = $1`,
        [serverId, before.heartbeat, before.activity],
      );
      expect(rows[0]).toEqual({ heartbeat: true, activity: true });
      expect(await lastSeen()).toMatchObject({ cpu, memory });
    };
    expect(await lastSeen()).toEqual({ heartbeat: null, activity: null, cpu: null, memory: null });
    const single = (health: statussync.ServerHealth) => (metrics: object) => h.call('heartbeat', { serverId, state: RUNNING, health, ...metrics });
    const batched = (health: statussync.ServerHealth) => (metrics: object) =>
      h.call('heartbeatBatch', { heartbeats: [{ serverId, state: RUNNING, health, ...metrics }] });
    await expectMoved(single(HEALTHY), 12.5, 256); // a transition
    await expectMoved(single(HEALTHY), 20.25, 300); // steady
    await expectMoved(batched(HEALTHY), 30, 310.75); // steady
    await expectMoved(batched(DEGRADED), 40, 320); // a transition
    expect(await countLogs(h, serverId)).toBe(2);
  });

  it('decides a transition once when many beats race for it', async () => {
    const { serverId } = await createServer(h, 'beat-race');
    await h.call('heartbeat', { serverId, state: RUNNING, health: HEALTHY });
    const results = await Promise.all(Array.from({ length: 16 }, () => h.call('heartbeat', { serverId, state: RUNNING, health: DEGRADED })));
    expect(results.filter((r) => r.transitionRecorded)).toHaveLength(1);
    const { rows } = await h.pg.query(
      `SELECT previous_status->>'health' AS before, current_status->>'health' AS after FROM mcp_server_status_logs WHERE server_id = $1 ORDER BY timestamp`,
      [serverId],
    );
    expect(rows).toEqual([
      { before: 'UNKNOWN', after: 'HEALTHY' },
      { before: 'HEALTHY', after: 'DEGRADED' },
    ]);
  });

  it('writes a periodic snapshot when configured', async () => {
    const snapshots = await startHarness({ heartbeatSnapshotIntervalSeconds: 1 });
    try {
      const { serverId } = await createServer(snapshots, 'beat-snapshot');
      expect((await snapshots.call('heartbeat', { serverId, state: RUNNING, health: HEALTHY })).transitionRecorded).toBe(true);
      expect((await snapshots.call('heartbeat', { serverId, health: HEALTHY })).snapshotRecorded).toBe(false);
      await new Promise((r) => setTimeout(r, 1_100));
      const due = await snapshots.call('heartbeat', { serverId, health: HEALTHY, heartbeatData: '{"load":0.3}' });
      expect(due).toMatchObject({ transitionRecorded: false, snapshotRecorded: true });
      expect(due.entry).toMatchObject({ details: 'periodic snapshot', heartbeatData: '{"load": 0.3}' });
      expect((await snapshots.call('heartbeat', { serverId, health: HEALTHY })).snapshotRecorded).toBe(false);
      expect(await countLogs(snapshots, serverId)).toBe(2);
      // The batch path takes snapshots the same way.
      await new Promise((r) => setTimeout(r, 1_100));
      const batched = await snapshots.call('heartbeatBatch', { heartbeats: [{ serverId, health: HEALTHY }] });
      expect(batched.results[0]).toMatchObject({ transitionRecorded: false, snapshotRecorded: true });
      expect(batched.results[0].entry).toMatchObject({ details: 'periodic snapshot' });
      expect(await countLogs(snapshots, serverId)).toBe(3);
    } finally {
      await snapshots.close();
    }
  });

  it('rejects bad input with precise codes and changes nothing', async () => {
    const { serverId } = await createServer(h, 'beat-bad');
    const before = await countLogs(h);
    expect((await expectGrpcError(h.call('heartbeat', { serverId: crypto.randomUUID(), health: HEALTHY }))).code).toBe(grpc.status.NOT_FOUND);
    const cases: Array<[Partial<statussync.HeartbeatRequest>, string]> = [
      [{ serverId: '' }, 'server_id'],
      [{ state: 99 as statussync.ServerState }, 'state'],
      [{ health: 77 as statussync.ServerHealth }, 'health'],
      [{ cpuUsage: -1 }, 'cpu_usage'],
      [{ cpuUsage: Number.NaN }, 'cpu_usage'],
      [{ memoryUsage: 1e12 }, 'memory_usage'],
      [{ responseTimeMs: -2 }, 'response_time_ms'],
      [{ uptimeSeconds: '-1' }, 'uptime_seconds'],
      [{ heartbeatData: '{nope' }, 'heartbeat_data'],
    ];
    for (const [patch, field] of cases) {
      const err = await expectGrpcError(h.call('heartbeat', { serverId, health: HEALTHY, ...patch }));
      expect(err.code, field).toBe(grpc.status.INVALID_ARGUMENT);
      expect(decodeBadRequest(err.metadata).map((v) => v.field)).toEqual([field]);
    }
    const { rows } = await h.pg.query('SELECT last_heartbeat_at, health FROM mcp_servers WHERE id = $1', [serverId]);
    expect(rows[0]).toEqual({ last_heartbeat_at: null, health: 'UNKNOWN' });
    expect(await countLogs(h)).toBe(before);
  });
});

describe('HeartbeatBatch', () => {
  const auditedTransitions = async (serverIds: string[]): Promise<number> => {
    const { rows } = await h.pg.query(
      `SELECT count(*)::int AS n FROM audit_logs WHERE action_type = 'status.transition' AND resource_id = ANY($1::text[])`,
      [serverIds],
    );
    return rows[0].n;
  };

  it('records many servers at once: nothing for steady beats, one row and one audit per real transition', async () => {
    const servers = await Promise.all([0, 1, 2].map((i) => createServer(h, `batch-${i}`, { staleAfterSeconds: 30 })));
    const ids = servers.map((s) => s.serverId);
    const batch = (health: (i: number) => statussync.ServerHealth, cpu: number) =>
      h.call('heartbeatBatch', { heartbeats: ids.map((serverId, i) => ({ serverId, state: RUNNING, health: health(i), cpuUsage: cpu + i })) });
    const first = await batch(() => HEALTHY, 1);
    expect(first.results.map((r) => r.transitionRecorded)).toEqual([true, true, true]);
    expect(first.unknownServerIndexes).toEqual([]);
    for (let i = 0; i < 5; i++) {
      const steady = await batch(() => HEALTHY, 10 * (i + 1));
      expect(steady.results.every((r) => !r.transitionRecorded && !r.snapshotRecorded && !r.entry && r.state === RUNNING && r.health === HEALTHY)).toBe(
        true,
      );
    }
    expect(await countLogs(h, ids[1])).toBe(1);
    const { rows } = await h.pg.query('SELECT cpu_usage::float8 AS cpu FROM mcp_servers WHERE id = ANY($1::uuid[]) ORDER BY cpu_usage', [ids]);
    expect(rows.map((r) => r.cpu)).toEqual([50, 51, 52]);

    // One server degrades, one beat names a server that does not exist: the rest is recorded all the same.
    const unknown = crypto.randomUUID();
    const mixed = await h.call('heartbeatBatch', {
      heartbeats: [
        { serverId: ids[0], state: RUNNING, health: HEALTHY },
        { serverId: unknown, state: RUNNING, health: HEALTHY },
        { serverId: ids[1], state: RUNNING, health: DEGRADED, responseTimeMs: 9 },
        { serverId: ids[2], cpuUsage: 7 },
      ],
    });
    expect(mixed.unknownServerIndexes).toEqual([1]);
    expect(mixed.results.map((r) => r.transitionRecorded)).toEqual([false, false, true, false]);
    expect(mixed.results[2].entry).toMatchObject({ serverId: ids[1], responseTimeMs: 9 });
    expect(JSON.parse(mixed.results[2].entry!.previousStatus!)).toMatchObject({ state: 'RUNNING', health: 'HEALTHY' });
    expect(mixed.results[3]).toMatchObject({ state: RUNNING, health: HEALTHY });
    expect(await countLogs(h, ids[1])).toBe(2);
    expect(await countLogs(h, ids[0])).toBe(1);
    expect(await auditedTransitions(ids)).toBe(4);

    // A stale server's next beat in a batch is its recovery.
    await silence([ids[0]], 31);
    await h.unit.sweeper.sweepOnce();
    const recovered = await batch(() => HEALTHY, 1);
    expect(recovered.results.map((r) => r.transitionRecorded)).toEqual([true, true, false]);
    expect(recovered.results[0].entry!.details).toContain('recovered from stale');
  });

  it('decides a transition once when a batch and single beats race for it', async () => {
    const { serverId } = await createServer(h, 'batch-race');
    const others = await Promise.all([0, 1, 2].map((i) => createServer(h, `batch-race-other-${i}`)));
    await h.call('heartbeat', { serverId, state: RUNNING, health: HEALTHY });
    const degrade = { serverId, state: RUNNING, health: DEGRADED };
    const [batches, singles] = await Promise.all([
      Promise.all(
        [0, 1, 2, 3].map(() =>
          h.call('heartbeatBatch', { heartbeats: [...others.map((o) => ({ serverId: o.serverId, health: HEALTHY })), degrade] }),
        ),
      ),
      Promise.all(Array.from({ length: 8 }, () => h.call('heartbeat', degrade))),
    ]);
    const decided = [...batches.map((b) => b.results[3]), ...singles].filter((r) => r.transitionRecorded);
    expect(decided).toHaveLength(1);
    const { rows } = await h.pg.query(
      `SELECT previous_status->>'health' AS before, current_status->>'health' AS after FROM mcp_server_status_logs WHERE server_id = $1 ORDER BY timestamp`,
      [serverId],
    );
    expect(rows).toEqual([
      { before: 'UNKNOWN', after: 'HEALTHY' },
      { before: 'HEALTHY', after: 'DEGRADED' },
    ]);
  });

  it('rejects a bad batch whole, naming each problem by position, and changes nothing', async () => {
    const { serverId } = await createServer(h, 'batch-bad');
    const before = await countLogs(h);
    const fieldsOf = async (request: Parameters<Harness['call']>[1]) => {
      const err = await expectGrpcError(h.call('heartbeatBatch', request as never));
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      return decodeBadRequest(err.metadata).map((v) => v.field);
    };
    expect(await fieldsOf({ heartbeats: [] })).toEqual(['heartbeats']);
    expect(await fieldsOf({ heartbeats: Array.from({ length: 1001 }, () => ({ serverId })) })).toEqual(['heartbeats']);
    expect(
      await fieldsOf({
        heartbeats: [
          { serverId, health: HEALTHY },
          { serverId: 'nope' },
          { serverId, health: DEGRADED },
          { serverId: crypto.randomUUID(), cpuUsage: -1, heartbeatData: '{nope' },
        ],
      }),
    ).toEqual(['heartbeats[1].server_id', 'heartbeats[2].server_id', 'heartbeats[3].heartbeat_data', 'heartbeats[3].cpu_usage']);
    const { rows } = await h.pg.query('SELECT last_heartbeat_at, health FROM mcp_servers WHERE id = $1', [serverId]);
    expect(rows[0]).toEqual({ last_heartbeat_at: null, health: 'UNKNOWN' });
    expect(await countLogs(h)).toBe(before);
  });
});

describe('stale detection', () => {
  it('marks a silent server unhealthy once per episode; the next heartbeat records the recovery', async () => {
    const { serverId } = await createServer(h, 'stale-one', { staleAfterSeconds: 30 });
    await h.call('heartbeat', { serverId, state: RUNNING, health: HEALTHY });
    await silence([serverId], 20);
    expect((await h.unit.sweeper.sweepOnce()).map((r) => r.server_id)).not.toContain(serverId);
    await silence([serverId], 31);
    const marked = await h.unit.sweeper.sweepOnce();
    expect(marked.filter((r) => r.server_id === serverId)).toHaveLength(1);
    await h.unit.sweeper.sweepOnce();
    const rows = await systemRows(serverId);
    expect(rows).toHaveLength(1);
    expect(rows[0].current_status).toEqual({ state: 'RUNNING', health: 'UNHEALTHY' });
    expect(rows[0].details).toMatch(/^stale: no heartbeat for 3\d s \(stale after 30 s\)$/);

    const recovered = await h.call('heartbeat', { serverId, state: RUNNING, health: HEALTHY });
    expect(recovered.transitionRecorded).toBe(true);
    expect(JSON.parse(recovered.entry!.previousStatus!)).toEqual({ state: 'RUNNING', health: 'UNHEALTHY' });
    expect(recovered.entry!.details).toContain('recovered from stale');
    // A new episode is marked again.
    await silence([serverId], 31);
    await h.unit.sweeper.sweepOnce();
    expect(await systemRows(serverId)).toHaveLength(2);
  });

  it('marks each episode once with two service replicas sweeping the same database at once', async () => {
    let replica: StatusSyncService | undefined;
    const second: RunningService = await startService({
      serviceName: 'status-sync',
      defaultPort: 0,
      env: { DATABASE_URL: h.db.url, GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', LOG_LEVEL: 'silent' },
      createDataSource: (url) => createDataSource({ url, entities: statusSyncEntities, poolSize: 8 }),
      createServices: (deps) => [(replica = createStatusSyncService({ ...deps, sweeper: { intervalMs: 0, batchSize: 7 } }))],
    });
    await waitForServing(`127.0.0.1:${second.server.port}`);
    try {
      const servers = await Promise.all(Array.from({ length: 40 }, (_, i) => createServer(h, `stale-race-${i}`, { staleAfterSeconds: 5 })));
      const ids = servers.map((s) => s.serverId);
      await Promise.all(ids.map((serverId) => h.call('heartbeat', { serverId, state: RUNNING, health: HEALTHY })));
      await silence(ids, 10);
      // Rounds of both replicas sweeping concurrently (three sweeps each per round).
      const marked: StatusLogRow[] = [];
      for (let round = 0; round < 3; round++) {
        const sweeps = await Promise.all([1, 2, 3].flatMap(() => [h.unit.sweeper.sweepOnce(), replica!.sweeper.sweepOnce()]));
        marked.push(...sweeps.flat().filter((r) => ids.includes(r.server_id)));
      }
      expect(marked).toHaveLength(ids.length);
      expect(new Set(marked.map((r) => r.server_id)).size).toBe(ids.length);
      const { rows } = await h.pg.query(
        `SELECT server_id, count(*)::int AS n FROM mcp_server_status_logs WHERE source = 'system' AND server_id = ANY($1::uuid[]) GROUP BY server_id`,
        [ids],
      );
      expect(rows.every((r) => r.n === 1)).toBe(true);
      expect(rows).toHaveLength(ids.length);
    } finally {
      await second.shutdown('test done');
    }
  });

  it('runs in the background between start() and close(), and is suppressed in a maintenance window', async () => {
    const sweeping = await startHarness({ sweeper: { intervalMs: 50 } });
    try {
      const now = Date.now();
      const { environment: inWindow } = await sweeping.call('upsertEnvironment', {
        environment: { name: 'maint-now', maintenanceWindowStart: new Date(now - 60_000), maintenanceWindowEnd: new Date(now + 3_600_000), isActive: true },
      });
      const { environment: pastWindow } = await sweeping.call('upsertEnvironment', {
        environment: { name: 'maint-past', maintenanceWindowStart: new Date(now - 7_200_000), maintenanceWindowEnd: new Date(now - 3_600_000), isActive: true },
      });
      const suppressed = await createServer(sweeping, 'maint-suppressed', { environmentId: inWindow!.id, staleAfterSeconds: 5 });
      const marked = await createServer(sweeping, 'maint-marked', { environmentId: pastWindow!.id, staleAfterSeconds: 5 });
      for (const s of [suppressed, marked]) await sweeping.call('heartbeat', { serverId: s.serverId, state: RUNNING, health: HEALTHY });
      await sweeping.pg.query(`UPDATE mcp_servers SET last_heartbeat_at = now() - interval '10 seconds' WHERE id = ANY($1::uuid[])`, [
        [suppressed.serverId, marked.serverId],
      ]);
      const deadline = Date.now() + 5_000;
      while ((await countLogs(sweeping, marked.serverId)) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 200)); // several more sweeps
      const health = async (id: string) => (await sweeping.pg.query('SELECT health FROM mcp_servers WHERE id = $1', [id])).rows[0].health;
      expect(await health(marked.serverId)).toBe('UNHEALTHY');
      expect(await countLogs(sweeping, marked.serverId)).toBe(2);
      expect(await health(suppressed.serverId)).toBe('HEALTHY');
      expect(await countLogs(sweeping, suppressed.serverId)).toBe(1);

      // The window ends: the silent server is marked at the next sweep.
      await sweeping.call('upsertEnvironment', {
        environment: { ...inWindow, maintenanceWindowStart: new Date(now - 120_000), maintenanceWindowEnd: new Date(now - 60_000) },
      });
      const until = Date.now() + 5_000;
      while ((await health(suppressed.serverId)) !== 'UNHEALTHY' && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(await health(suppressed.serverId)).toBe('UNHEALTHY');
    } finally {
      await sweeping.close();
    }
  });
});
