import type { DataSource, QueryRunner } from 'typeorm';
import type { CallContext, ServerStreamWriter } from './calls';
import { inTransaction } from './db';
import { ResourceExhaustedError } from './errors';
import type { NotificationHub } from './notifications';
import { decodePageToken, encodePageToken } from './page-token';

/** A position in commit order: (ingest_xid, id) of the last row sent. */
export interface CommitCursor {
  xid: string;
  id: string;
  /**
   * For a stream started "now": the snapshot taken at its start. Rows visible
   * in it had committed before the stream began and are skipped; it is
   * dropped once the cursor passes the snapshot's xmax.
   */
  startSnapshot?: string;
}

interface StreamPosition extends CommitCursor {
  /** Wall-clock ms when this position was issued: bounds which partitions can hold newer rows. */
  at: number;
}

export interface CommitOrderRow {
  ingest_xid: string;
  id: string;
}

export interface CommitOrderLimits {
  /** Rows read per query; also the most a slow reader can make the server hold. */
  batchSize: number;
  /** Wait before re-reading when an unfinished transaction holds notified rows back. */
  heldBackRecheckMs: number;
  /** Safety re-read when nothing was notified for this long. */
  idleRecheckMs: number;
  maxConcurrent: number;
  /** How much older than its cursor a row committing later can be stamped: bounds the scan to recent partitions. */
  maxLagMs: number;
}

/** Reads rows after `cursor` in (ingest_xid, id) order below commit_horizon(), returning that horizon. */
export type ReadAfter<Row> = (
  q: QueryRunner,
  cursor: CommitCursor,
  notBefore: Date,
  limit: number,
) => Promise<{ rows: Row[]; horizon: string }>;

const MAX_UUID = 'ffffffff-ffff-ffff-ffff-ffffffffffff';

/**
 * Reads in flight at once across all streams of one kind. One commit wakes
 * every stream, and a thousand reads queued on the connection pool would keep
 * every other call waiting for a connection (past its timeout: UNAVAILABLE);
 * queued here instead, they leave the rest of the pool to other calls.
 */
const MAX_CONCURRENT_READS = 4;

/** At most `size` functions running at once; the rest wait in arrival order. */
class Slots {
  private readonly waiting: Array<() => void> = [];

  constructor(private free: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free -= 1;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free += 1;
    }
  }
}

/** pg_snapshot text is "xmin:xmax:xip,…". */
function snapshotXmax(snapshot: string): bigint {
  return BigInt(snapshot.split(':')[1]);
}

/**
 * The SQL a ReadAfter needs besides its own filters: `alias.ingest_xid` and
 * `alias.id` after the cursor, rows visible in the start snapshot skipped,
 * and the horizon bound. `param` registers a value and returns its $n.
 */
export function commitOrderPredicates(alias: string, cursor: CommitCursor, param: (value: unknown) => string): string[] {
  const predicates = [
    `(${alias}.ingest_xid, ${alias}.id) > (${param(cursor.xid)}::bigint, ${param(cursor.id)}::uuid)`,
    `${alias}.ingest_xid < (SELECT horizon FROM commit_order_horizon)`,
  ];
  if (cursor.startSnapshot) {
    predicates.push(`NOT pg_visible_in_snapshot(${alias}.ingest_xid::text::xid8, ${param(cursor.startSnapshot)}::pg_snapshot)`);
  }
  return predicates;
}

/** The CTE that commitOrderPredicates refers to: prefix the query with it. */
export const COMMIT_ORDER_HORIZON_CTE = 'commit_order_horizon AS (SELECT commit_horizon(pg_current_snapshot()) AS horizon)';

/**
 * A live, resumable stream of rows in commit order, woken by NOTIFY from the
 * writing transactions (payload: the writer's transaction id). Every message
 * carries the cursor after it, the first one (no row) the starting cursor;
 * resuming from any of them continues with no gap and no duplicate: rows are
 * read only below commit_horizon(), so none can later commit behind a cursor.
 * A slow reader pauses the reads (writes await drain), so the server holds at
 * most one batch per stream. Shared by connection-log tails and status watches.
 */
export class CommitOrderStream<Row extends CommitOrderRow> {
  private active = 0;
  /** Highest writer transaction id announced on the channel. */
  private newestNotifiedXid = 0n;
  /** Notifications seen; a change during a read means its wake-up was spent while reading. */
  private notifications = 0;
  private readonly reads = new Slots(MAX_CONCURRENT_READS);

  constructor(
    private readonly options: {
      dataSource: DataSource;
      hub: NotificationHub;
      channel: string;
      /** Binds cursors to this stream kind, e.g. 'mcp.connectionlog.v1.TailEvents'. */
      cursorScope: string;
      limits: CommitOrderLimits;
    },
  ) {
    options.hub.addChannel(options.channel);
    options.hub.subscribe((channel, payload) => {
      if (channel !== options.channel || !payload || !/^\d+$/.test(payload)) return;
      this.notifications += 1;
      const xid = BigInt(payload);
      if (xid > this.newestNotifiedXid) this.newestNotifiedXid = xid;
    });
  }

  async run<M>(
    readAfter: ReadAfter<Row>,
    cursorToken: string,
    stream: ServerStreamWriter<M>,
    ctx: CallContext,
    toMessage: (row: Row | undefined, cursor: string) => M,
  ): Promise<void> {
    const { limits, cursorScope, dataSource, hub } = this.options;
    // Decoded first: a bad cursor is the caller's error even when the server is busy.
    const resumeFrom = cursorToken ? decodePageToken<StreamPosition>(cursorToken, cursorScope, 'cursor') : undefined;
    if (this.active >= limits.maxConcurrent) {
      throw new ResourceExhaustedError(`at most ${limits.maxConcurrent} concurrent streams of this kind per replica`, 1_000);
    }
    this.active += 1;
    try {
      let position = resumeFrom ?? (await this.startingPosition());
      await stream.write(toMessage(undefined, encodePageToken(position, cursorScope)));
      while (!ctx.signal.aborted) {
        const from = position;
        const notifiedBeforeRead = this.notifications;
        const notBefore = new Date(from.at - limits.maxLagMs);
        const read = await this.reads.run(async () =>
          // A stream cancelled while it waited for its turn needs no read.
          ctx.signal.aborted
            ? undefined
            : inTransaction(dataSource, undefined, (q) => readAfter(q, from, notBefore, limits.batchSize), { readAs: ctx.principal }),
        );
        if (!read) return;
        const { rows, horizon } = read;
        for (const row of rows) {
          position = { ...position, xid: row.ingest_xid, id: row.id, at: Date.now() };
          if (position.startSnapshot && BigInt(row.ingest_xid) >= snapshotXmax(position.startSnapshot)) delete position.startSnapshot;
          await stream.write(toMessage(row, encodePageToken(position, cursorScope)));
          if (ctx.signal.aborted) return;
        }
        // A full batch, or a commit announced while the read ran: read again at once.
        if (rows.length === limits.batchSize || this.notifications !== notifiedBeforeRead) continue;
        // A notified commit at or above the horizon is held back by an older open
        // transaction, whose end may never be notified (it may write elsewhere):
        // re-read soon. Otherwise sleep until the next commit is announced.
        const heldBack = this.newestNotifiedXid >= BigInt(horizon);
        await hub.wait(ctx.signal, heldBack ? limits.heldBackRecheckMs : limits.idleRecheckMs);
      }
    } finally {
      this.active -= 1;
    }
  }

  /** Starts after everything committed before the call. */
  private async startingPosition(): Promise<StreamPosition> {
    const [snap] = await this.reads.run(() =>
      inTransaction(this.options.dataSource, undefined, (q) =>
        q.query('SELECT commit_horizon(s)::text AS horizon, s::text AS snapshot FROM pg_current_snapshot() AS s'),
      ),
    );
    return { xid: (BigInt(snap.horizon) - 1n).toString(), id: MAX_UUID, at: Date.now(), startSnapshot: snap.snapshot };
  }
}
