import { CommitOrderStream, type CallContext, type CommitOrderLimits, type NotificationHub, type ServerStreamWriter } from '@mcp/runtime';
import { trace } from '@opentelemetry/api';
import type { DataSource } from 'typeorm';
import { STATUS_LOG_CHANNEL, type StatusLogRow, type StatusRepository, type WatchFilter } from './repository';

/**
 * WatchServerStatus: status-log rows in commit order (CommitOrderStream), for
 * one server, an owner's servers or all, scoped by row-level security.
 */
export class StatusWatch {
  private readonly stream: CommitOrderStream<StatusLogRow>;

  constructor(
    dataSource: DataSource,
    private readonly repository: StatusRepository,
    hub: NotificationHub,
    limits: CommitOrderLimits,
  ) {
    this.stream = new CommitOrderStream({ dataSource, hub, channel: STATUS_LOG_CHANNEL, cursorScope: 'mcp.statussync.v1.WatchServerStatus', limits });
  }

  /** The call's span gets the number of history rows sent (`mcp.stream.rows`) when the stream ends. */
  async run<M>(
    filter: WatchFilter,
    cursorToken: string,
    stream: ServerStreamWriter<{ entry: M | undefined; cursor: string }>,
    ctx: CallContext,
    toMessage: (row: StatusLogRow) => M,
  ): Promise<void> {
    let rowsSent = 0;
    const counting: typeof stream = {
      async write(message) {
        await stream.write(message);
        if (message.entry !== undefined) rowsSent += 1;
      },
    };
    try {
      await this.stream.run(
        (q, cursor, notBefore, limit) => this.repository.rowsAfterCommitCursor(q, filter, cursor, notBefore, limit),
        cursorToken,
        counting,
        ctx,
        (row, cursor) => ({ entry: row && toMessage(row), cursor }),
      );
    } finally {
      // A watch runs until it is cancelled or fails: the total is known only when it ends.
      trace.getActiveSpan()?.setAttribute('mcp.stream.rows', rowsSent);
    }
  }
}
