import * as grpc from '@grpc/grpc-js';
import { connectionlog } from '@mcp/proto';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFixture, startHarness, type Fixture, type Harness } from './harness';

const { EventType } = connectionlog;
let h: Harness;
let a: Fixture;
let b: Fixture;

beforeAll(async () => {
  h = await startHarness();
  a = await createFixture(h, 'tail-a');
  b = await createFixture(h, 'tail-b');
});
afterAll(async () => h?.close());

/** Opens a tail and collects what arrives; `until(n)` waits for n messages. */
function openTail(request: { filter?: Partial<connectionlog.EventFilter>; cursor?: string }) {
  const received: connectionlog.TailEventsResponse[] = [];
  const starts: connectionlog.TailEventsResponse[] = [];
  const waiters: Array<() => void> = [];
  const call = h.client.tailEvents(connectionlog.TailEventsRequest.fromPartial(request), h.metadata());
  call.on('data', (m: connectionlog.TailEventsResponse) => {
    starts.push(m);
    if (!m.event) return; // the opening message: starting cursor only
    received.push(m);
    waiters.splice(0).forEach((w) => w());
  });
  call.on('error', () => undefined); // cancellation ends every tail here
  return {
    received,
    /** Every message, the opening cursor-only one included. */
    all: starts,
    async until(n: number, timeoutMs = 10_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (received.length < n) {
        if (Date.now() > deadline) throw new Error(`tail got ${received.length} of ${n} events`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
    cancel: () => call.cancel(),
  };
}

async function record(fx: Fixture, n: number, details: string): Promise<string[]> {
  const { acks } = await h.call('recordEvents', {
    events: Array.from({ length: n }, (_, i) => ({ connectionId: fx.connectionId, eventType: EventType.EVENT_TYPE_USAGE_RECORDED, eventDetails: `${details}-${i}` })),
  });
  return acks.map((x) => x.id);
}

const settle = () => new Promise((r) => setTimeout(r, 300));

describe('TailEvents', () => {
  it('streams events committed after it started, in commit order, woken by NOTIFY', async () => {
    await record(a, 3, 'before');
    const tail = openTail({});
    await settle();
    const first = await record(a, 5, 'live-1');
    const second = await record(b, 4, 'live-2');
    await tail.until(9);
    await settle();
    expect(tail.received.map((m) => m.event!.id)).toEqual([...first, ...second]);
    expect(tail.received.every((m) => m.cursor.length > 0)).toBe(true);
    tail.cancel();
  });

  it('resumes from a cursor after a disconnect with no gap and no duplicate', async () => {
    const tail = openTail({ filter: { agentId: a.agentId } });
    await settle();
    const seen = await record(a, 4, 'resume-1');
    await tail.until(4);
    tail.cancel();
    const cursor = tail.received[tail.received.length - 1].cursor;
    const missed = [...(await record(a, 6, 'while-away')), ...(await record(b, 3, 'other-agent'))].slice(0, 6);
    const resumed = openTail({ filter: { agentId: a.agentId }, cursor });
    const later = await record(a, 2, 'after-resume');
    await resumed.until(8);
    await settle();
    expect(resumed.received.map((m) => m.event!.id)).toEqual([...missed, ...later]);
    expect(resumed.received.some((m) => seen.includes(m.event!.id))).toBe(false);
    resumed.cancel();
  });

  it('never skips a row of a transaction that commits after a later one (gapless across open transactions)', async () => {
    const tail = openTail({ filter: { connectionIds: [a.connectionId] } });
    await settle();
    // T1 starts first and stays open; T2 (the RPC) commits meanwhile.
    const t1 = new Client({ connectionString: h.db.url });
    await t1.connect();
    await t1.query('BEGIN');
    const {
      rows: [slow],
    } = await t1.query(
      `INSERT INTO agent_mcp_connection_logs (connection_id, event_type, event_details) VALUES ($1, 'testing', 'slow writer') RETURNING id`,
      [a.connectionId],
    );
    const fast = await record(a, 2, 'fast');
    await settle();
    // Held back: emitting T2 now would move the cursor past T1's position.
    expect(tail.received.length).toBe(0);
    await t1.query("SELECT pg_notify('agent_mcp_connection_logs', pg_current_xact_id()::text)");
    await t1.query('COMMIT');
    await t1.end();
    await tail.until(3);
    expect(tail.received.map((m) => m.event!.id)).toEqual([slow.id, ...fast]);
    tail.cancel();
  });

  it('is not held back by an open transaction in another database of the cluster', async () => {
    const other = new Client({ connectionString: h.db.adminUrl });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query('SELECT pg_current_xact_id()'); // holds a transaction id, cluster-wide
      const tail = openTail({ filter: { connectionIds: [b.connectionId] } });
      await settle();
      const ids = await record(b, 3, 'despite-other-db');
      await tail.until(3, 3_000);
      expect(tail.received.map((m) => m.event!.id)).toEqual(ids);
      tail.cancel();
    } finally {
      await other.query('ROLLBACK');
      await other.end();
    }
  });

  it('opens with the starting cursor, so a tail that drops before any event resumes without a gap', async () => {
    const tail = openTail({ filter: { agentId: b.agentId } });
    await settle();
    expect(tail.all).toHaveLength(1);
    expect(tail.all[0].event).toBeUndefined();
    tail.cancel();
    const missed = await record(b, 2, 'before-first-event');
    const resumed = openTail({ filter: { agentId: b.agentId }, cursor: tail.all[0].cursor });
    await resumed.until(2);
    expect(resumed.received.map((m) => m.event!.id)).toEqual(missed);
    resumed.cancel();
  });

  it('applies filters and rejects a malformed cursor', async () => {
    const onlyErrors = openTail({ filter: { errorsOnly: true } });
    await settle();
    await record(a, 2, 'noise');
    const { acks } = await h.call('recordEvents', { events: [{ connectionId: b.connectionId, eventType: EventType.EVENT_TYPE_ERROR }] });
    await onlyErrors.until(1);
    await settle();
    expect(onlyErrors.received.map((m) => m.event!.id)).toEqual([acks[0].id]);
    onlyErrors.cancel();

    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const call = h.client.tailEvents(connectionlog.TailEventsRequest.fromPartial({ cursor: 'nope' }), h.metadata());
      call.on('error', (e) => resolve(e as grpc.ServiceError));
      call.on('data', () => undefined);
    });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toContain('cursor');
  });
});
