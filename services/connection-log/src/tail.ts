import type { connectionlog } from '@mcp/proto';
import { CommitOrderStream, type CallContext, type CommitOrderLimits, type NotificationHub, type ServerStreamWriter } from '@mcp/runtime';
import type { DataSource } from 'typeorm';
import { CONNECTION_LOG_CHANNEL, type ConnectionLogRepository, type ConnectionLogRow, type EventQuery } from './repository';

/**
 * TailEvents: connection events in commit order (CommitOrderStream), filtered
 * like ListEvents and scoped by row-level security to what the caller may read.
 */
export class EventTail {
  private readonly stream: CommitOrderStream<ConnectionLogRow>;

  constructor(
    dataSource: DataSource,
    private readonly repository: ConnectionLogRepository,
    hub: NotificationHub,
    limits: CommitOrderLimits,
  ) {
    this.stream = new CommitOrderStream({
      dataSource,
      hub,
      channel: CONNECTION_LOG_CHANNEL,
      cursorScope: 'mcp.connectionlog.v1.TailEvents',
      limits,
    });
  }

  run(
    query: EventQuery,
    cursorToken: string,
    stream: ServerStreamWriter<connectionlog.TailEventsResponse>,
    ctx: CallContext,
    toMessage: (row: ConnectionLogRow) => connectionlog.ConnectionEvent,
  ): Promise<void> {
    return this.stream.run(
      (q, cursor, notBefore, limit) => this.repository.rowsAfterCommitCursor(q, query, cursor, notBefore, limit),
      cursorToken,
      stream,
      ctx,
      (row, cursor) => ({ event: row && toMessage(row), cursor }),
    );
  }
}
