/**
 * Database unreachable at start: each service is started while the cluster
 * is stopped. It must start, report NOT_SERVING, answer UNAVAILABLE, and —
 * the same process, no restart — become SERVING and store writes once the
 * cluster is started (on the same port, as a database coming up would).
 */
import * as grpc from '@grpc/grpc-js';
import { createAuditClient, createConnectionLogClient, createRetentionClient, createStatusSyncClient, eventTime, uuidv7 } from '@mcp/client';
import { connectionlog, statussync } from '@mcp/proto';
import { checkHealth, waitForServing } from '@mcp/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HealthTimeline,
  RssSampler,
  STORED_KEYS,
  Scenario,
  createConnections,
  reconcile,
  recordResult,
  type ConnectionFixture,
  type ServiceName,
  type StoredKey,
} from '../src';

let scenario: Scenario;
let fixture: ConnectionFixture;

beforeAll(async () => {
  scenario = await Scenario.open('unreachable');
  [fixture] = await createConnections(scenario.pool, 'unreachable');
});
afterAll(async () => scenario?.close());

/** One write per service; resolves with the key it stored (or rejects with the gRPC error). */
interface Probe {
  key: StoredKey;
  write(address: string): Promise<string>;
}

const PROBES: Record<ServiceName, Probe> = {
  'connection-log': {
    key: STORED_KEYS.connectionEvents,
    write: async (address) => {
      const client = createConnectionLogClient({ address, apiKey: scenario.principals.writer.token, credentials: 'insecure' });
      const id = uuidv7();
      try {
        await client.recordEvents(
          { events: [{ id, timestamp: eventTime(), connectionId: fixture.connectionId, eventType: connectionlog.EventType.EVENT_TYPE_CONNECTED }] },
          { retry: false },
        );
        return id;
      } finally {
        client.close();
      }
    },
  },
  'status-sync': {
    key: STORED_KEYS.heartbeats,
    write: async (address) => {
      const client = createStatusSyncClient({ address, apiKey: scenario.principals.writer.token, credentials: 'insecure' });
      const key = uuidv7();
      try {
        // The server's first heartbeat: a transition (from UNKNOWN), which stores its key.
        await client.heartbeat(
          { serverId: fixture.serverId, health: statussync.ServerHealth.SERVER_HEALTH_DEGRADED, heartbeatData: JSON.stringify({ rel: key }) },
          { retry: false },
        );
        return key;
      } finally {
        client.close();
      }
    },
  },
  audit: {
    key: STORED_KEYS.auditEvents,
    write: async (address) => {
      const client = createAuditClient({ address, apiKey: scenario.principals.writer.token, credentials: 'insecure' });
      const id = uuidv7();
      try {
        await client.recordAuditEvents({ events: [{ id, createdAt: eventTime(), actionType: 'tool.call', description: 'unreachable' }] }, { retry: false });
        return id;
      } finally {
        client.close();
      }
    },
  },
  retention: {
    key: { table: 'retention_runs', expression: 'id', type: 'uuid' },
    write: async (address) => {
      const client = createRetentionClient({ address, apiKey: scenario.principals.operator.token, credentials: 'insecure' });
      try {
        const { run } = await client.runRetention({ policy: 'all' }, { retry: false, deadlineMs: 60_000 });
        return run!.id;
      } finally {
        client.close();
      }
    },
  },
};

describe('database unreachable at start', () => {
  it('every service starts NOT_SERVING, answers UNAVAILABLE, and recovers without a restart when the database appears', async () => {
    const { cluster, pool } = scenario;
    await cluster.stop('fast');
    await scenario.start(Object.keys(PROBES) as ServiceName[], { waitServing: false });
    const services = scenario.services;
    const sampler = new RssSampler(() => services.map((s) => ({ name: s.name, pid: s.pid }))).start();
    const pids = services.map((s) => s.pid);
    // Listening and answering health while the database is down (it may take a moment after spawn to listen).
    await Promise.all(services.map((s) => waitForHealthAnswer(s.address)));
    const timelines = services.map((s) => new HealthTimeline(s.address));
    try {
      const health = await Promise.all(services.map((s) => checkHealth(s.address)));
      const refused = await Promise.all(
        services.map((s) =>
          PROBES[s.name].write(s.address).then(
            () => 'accepted',
            (err: grpc.ServiceError) => grpc.status[err.code],
          ),
        ),
      );
      // Down a while longer: the services keep running, NOT_SERVING, through several connection attempts.
      await new Promise((r) => setTimeout(r, 3_000));
      expect(timelines.map((t) => t.sequence)).toEqual(services.map(() => ['NOT_SERVING']));
      const downFor = Date.now();
      await cluster.start();
      const recoveredAfter = await Promise.all(services.map((s) => waitForServing(s.address, 60_000).then(() => Date.now() - downFor)));
      const stored = await Promise.all(services.map((s) => PROBES[s.name].write(s.address)));
      sampler.stop();
      for (const t of timelines) await t.stop();

      const counts = await Promise.all(services.map((s, i) => reconcile(pool, PROBES[s.name].key, [stored[i]])));
      for (const [i, s] of services.entries()) {
        const count = counts[i];
        recordResult({
          scenario: 'db-unreachable',
          label: s.name,
          operations: 2,
          acknowledged: 1,
          stored: count.stored,
          lost: count.lost,
          duplicated: count.duplicated,
          peakRss: { [s.name]: sampler.peak()[s.name] },
          notes: [
            `health ${timelines[i].sequence.join(' → ')}; the write while the database was down: ${refused[i]}; SERVING ${recoveredAfter[i]} ms after the cluster started; same pid throughout: ${s.pid === pids[i] && s.running}`,
          ],
        });
      }

      expect(health).toEqual(services.map(() => 'NOT_SERVING'));
      expect(refused).toEqual(services.map(() => 'UNAVAILABLE'));
      for (const [i, s] of services.entries()) {
        expect(s.running, `${s.name} exited: ${s.stderrTail()}`).toBe(true);
        expect(s.pid).toBe(pids[i]);
        expect(timelines[i].sequence, s.name).toEqual(['NOT_SERVING', 'SERVING']);
        expect(counts[i], s.name).toMatchObject({ stored: 1, lost: 0, duplicated: 0 });
      }
      for (const s of services) expect(await s.stop(), s.name).toEqual({ code: 0, signal: null });
    } finally {
      sampler.stop();
      for (const t of timelines) await t.stop();
    }
  });
});

/** Until the server answers health at all (it may not be listening yet just after spawn). */
async function waitForHealthAnswer(address: string): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    const answered = await checkHealth(address).then(
      () => true,
      () => false,
    );
    if (answered) return;
    if (Date.now() > until) throw new Error(`${address} never answered a health check`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
