/**
 * Resumable iterators over server-streaming RPCs whose messages carry a
 * cursor (TailEvents, WatchServerStatus): when the stream breaks (service
 * restarting, network), the iterator reopens it from the cursor of the last
 * message it received, with backoff, so the caller sees every item once, in
 * order, with no gap. It ends cleanly (done) on `return()` / `break` or when
 * the AbortSignal fires; it throws only errors that a reconnect cannot fix
 * (INVALID_ARGUMENT for a bad filter or cursor, PERMISSION_DENIED, …).
 */
import * as grpc from '@grpc/grpc-js';
import { context } from '@opentelemetry/api';
import type { RetryEvent } from './options';
import { backoffMs, isServiceError, jitterAbove, sleep, type RetryPolicy } from './retry';
import { decodeRetryDelayMs as retryDelayMs } from '@mcp/proto';

export interface ResumableOptions {
  /** Start after this cursor (from a previous iterator's `cursor`). Default: from now on. */
  cursor?: string;
  /** Ends the iteration (cleanly). */
  signal?: AbortSignal;
  /** Consecutive failed (re)connections before the iterator gives up and throws. Default: unlimited. */
  maxReconnectAttempts?: number;
  /** Extra metadata for every (re)connection. */
  metadata?: grpc.Metadata;
}

export interface ResumableIterable<T> extends AsyncIterable<T> {
  /**
   * Position after the last item yielded (or the starting position the
   * server announced, before any item): pass it as `cursor` to resume later
   * with no gap and no duplicate.
   */
  readonly cursor: string;
  /** How many times the stream was reopened. */
  readonly reconnects: number;
}

export interface ResumableSource<Msg, T> {
  method: string;
  open(cursor: string, metadata: grpc.Metadata | undefined): grpc.ClientReadableStream<Msg>;
  cursorOf(message: Msg): string;
  /** The item a message carries; undefined for cursor-only messages (the opening one). */
  itemOf(message: Msg): T | undefined;
  /** For finite streams (exports): true on the message after which the stream is complete. Live streams never end. */
  isLast?(message: Msg): boolean;
  retryPolicy: RetryPolicy;
  onRetry?: (info: RetryEvent) => void;
}

/** A broken stream worth reopening: anything but a verdict about the request or the caller. */
export function isResumableError(err: unknown): boolean {
  if (!isServiceError(err)) return false;
  switch (err.code) {
    case grpc.status.UNAVAILABLE: // service down or restarting, connection lost
    case grpc.status.CANCELLED: // cancelled by the server (shutdown grace over); ours never reach here
    case grpc.status.DEADLINE_EXCEEDED:
    case grpc.status.ABORTED:
      return true;
    case grpc.status.RESOURCE_EXHAUSTED: // e.g. too many tails on this replica: RetryInfo says when
      return retryDelayMs(err.metadata) !== undefined;
    case grpc.status.INTERNAL:
    case grpc.status.UNKNOWN:
      // Transport-level breaks grpc-js reports as INTERNAL (a reset stream, a closed session).
      return /RST_STREAM|GOAWAY|session|Connection dropped|ECONNRESET|EPIPE/i.test(err.details);
    default:
      return false;
  }
}

export function resumable<Msg, T>(source: ResumableSource<Msg, T>, options: ResumableOptions = {}): ResumableIterable<T> {
  const state = { cursor: options.cursor ?? '', reconnects: 0 };
  const callerContext = context.active();
  const maxFailures = options.maxReconnectAttempts ?? Infinity;

  async function* run(stop: AbortSignal): AsyncGenerator<T, void, undefined> {
    let received = state.cursor;
    let failures = 0;
    while (!stop.aborted) {
      const call = context.with(callerContext, () => source.open(received, options.metadata));
      const cancel = () => call.cancel();
      stop.addEventListener('abort', cancel, { once: true });
      let error: unknown;
      try {
        for await (const message of call as AsyncIterable<Msg>) {
          failures = 0;
          received = source.cursorOf(message) || received;
          const item = source.itemOf(message);
          state.cursor = received;
          if (item !== undefined) yield item;
          if (source.isLast?.(message)) return;
        }
      } catch (err) {
        error = err;
      } finally {
        stop.removeEventListener('abort', cancel);
        call.cancel();
      }
      if (stop.aborted) return;
      // A stream that ends without an error was ended by the server (shutting down): reopen it too.
      if (error !== undefined && !isResumableError(error)) throw error;
      failures += 1;
      if (failures > maxFailures) throw error ?? new Error(`${source.method}: the stream kept ending`);
      const serverDelayMs = isServiceError(error) ? retryDelayMs(error.metadata) : undefined;
      const delayMs = serverDelayMs !== undefined ? serverDelayMs + jitterAbove(serverDelayMs) : backoffMs(source.retryPolicy, failures - 1);
      const e = isServiceError(error) ? error : undefined;
      source.onRetry?.({
        method: source.method,
        attempt: failures,
        code: e?.code ?? grpc.status.OK,
        details: e?.details ?? 'stream ended by the server',
        delayMs,
        serverDelayMs,
      });
      try {
        await context.with(callerContext, () => sleep(delayMs, stop));
      } catch {
        return;
      }
      state.reconnects += 1;
    }
  }

  return {
    get cursor() {
      return state.cursor;
    },
    get reconnects() {
      return state.reconnects;
    },
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const stop = new AbortController();
      const onAbort = () => stop.abort(options.signal?.reason);
      if (options.signal?.aborted) stop.abort(options.signal.reason);
      else options.signal?.addEventListener('abort', onAbort, { once: true });
      const inner = run(stop.signal);
      const finish = () => options.signal?.removeEventListener('abort', onAbort);
      return {
        next: async () => {
          const r = await inner.next();
          if (r.done) finish();
          return r;
        },
        // Cancels the open call at once, even while a next() is waiting for a message.
        return: async () => {
          stop.abort();
          finish();
          await inner.return(undefined);
          return { done: true, value: undefined };
        },
        throw: async (err?: unknown) => {
          stop.abort();
          finish();
          return inner.throw(err);
        },
      };
    },
  };
}
