import { CommitOrderStream, type CallContext, type CommitOrderLimits, type NotificationHub, type ServerStreamWriter } from '@mcp/runtime';
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

  run<M>(
    filter: WatchFilter,
    cursorToken: string,
    stream: ServerStreamWriter<{ entry: M | undefined; cursor: string }>,
    ctx: CallContext,
    toMessage: (row: StatusLogRow) => M,
  ): Promise<void> {
    return this.stream.run(
      (q, cursor, notBefore, limit) => this.repository.rowsAfterCommitCursor(q, filter, cursor, notBefore, limit),
      cursorToken,
      stream,
      ctx,
      (row, cursor) => ({ entry: row && toMessage(row), cursor }),
    );
  }
}
