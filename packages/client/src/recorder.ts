/**
 * A batching recorder in the manner of OpenTelemetry's BatchSpanProcessor:
 * items go into a bounded buffer and are sent in batches, when a batch is
 * full (maxBatchSize) or when the oldest buffered item has waited
 * scheduledDelayMs, with one send in flight at a time. When the buffer is
 * full the caller's choice applies: 'block' (record() waits for space) or
 * 'drop' (record() resolves false and `dropped` counts it).
 *
 * Unlike the span processor it never loses what it accepted: items carry
 * client-assigned ids (so a batch re-sent after an ambiguous failure is
 * stored once), and a failed send is retried with the same items until it is
 * acknowledged. Only a verdict of the server about the items (invalid,
 * unknown connection) or about the caller (permission) removes items without
 * delivery; those are isolated (by the server's field violations, else by
 * bisecting the batch), counted as `rejected` and handed to `onError`.
 * `close()` is the only other way out: what it cannot deliver before its
 * timeout is `abandoned` and handed to `onError` too.
 *
 * Trace context: each send is a span "<name> flush" whose parent is the
 * context that was active when the recorder was created (the service's
 * startup, typically: a recorder outlives the requests that feed it), and
 * which links to the span that was active at each record() call of the batch
 * (up to 128). The gRPC client span of the send is its child. A batch mixes
 * events from many requests, so it belongs to none of their traces; the
 * links lead from the batch to each of them.
 */
import * as grpc from '@grpc/grpc-js';
import { context, SpanStatusCode, trace, type Context, type Link, type SpanContext } from '@opentelemetry/api';
import { backoffMs, isServiceError, jitterAbove, sleep, type RetryPolicy } from './retry';
import { decodeBadRequest as badRequestViolations, decodeRetryDelayMs as retryDelayMs } from '@mcp/proto';

export type OnFull = 'block' | 'drop';

export interface RecorderOptions {
  /** Items waiting to be sent (not counting the batch in flight). Default 10 000. */
  maxQueueSize?: number;
  /** Items per call. Default 500 (the services accept up to 1 000). */
  maxBatchSize?: number;
  /** The longest an item waits for a batch to fill before it is sent anyway. Default 1 000 ms. */
  scheduledDelayMs?: number;
  /** When the buffer is full: 'block' (record() waits for space, the default) or 'drop'. */
  onFull?: OnFull;
  /** Deadline of each send attempt. Default 10 000 ms. */
  exportTimeoutMs?: number;
  /** Backoff between re-sends of a failing batch (full jitter). Default 100 ms doubling up to 10 000 ms; attempts are unlimited. */
  retry?: Partial<Pick<RetryPolicy, 'initialBackoffMs' | 'maxBackoffMs' | 'multiplier'>>;
  /** INTERNAL/UNKNOWN answers tolerated for one batch before its items are treated as rejected (and isolated). Default 5. */
  maxInternalRetries?: number;
  /** Items that will never be delivered: rejected by the server, or abandoned by close(). Default: a process warning. */
  onError?: (error: RecorderError) => void;
  /** Each re-send of a failed batch. */
  onRetry?: (info: { attempt: number; code: grpc.status; details: string; delayMs: number; serverDelayMs?: number; items: number }) => void;
}

export interface RecorderStats {
  /** Accepted by record() (neither dropped nor refused after close). */
  recorded: number;
  /** Acknowledged by the service (stored by this send or, for `duplicates`, by an earlier one). */
  delivered: number;
  /** Part of `delivered`: acknowledged as already stored (a re-send of a batch whose first answer was lost). */
  duplicates: number;
  /** Refused by record() because the buffer was full (onFull 'drop'). */
  dropped: number;
  /** Refused by the service for good (invalid, or not permitted); passed to onError. */
  rejected: number;
  /** Given up by close() at its timeout; passed to onError. */
  abandoned: number;
  /** Re-sends after a failure. */
  retries: number;
  /** Successful calls. */
  batches: number;
  /** Waiting to be sent: buffered, plus record() calls blocked for space. */
  queued: number;
  /** In the send under way. */
  inFlight: number;
}

export class RecorderClosedError extends Error {
  constructor(name: string) {
    super(`${name}: the recorder is closed`);
    this.name = 'RecorderClosedError';
  }
}

export class RecorderError<Item = unknown> extends Error {
  constructor(
    message: string,
    readonly kind: 'rejected' | 'abandoned',
    readonly items: Item[],
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'RecorderError';
  }
}

/** Where a recorder sends: the RPC of one service. */
export interface BatchSink<Item> {
  /** For span names and messages, e.g. 'RecordEvents'. */
  name: string;
  /**
   * Splits a batch into the units sent as one call each, in order (default:
   * the whole batch). A unit is stored all or nothing; once sent, it is only
   * ever re-sent identical, or split after the service refused it.
   */
  plan?(items: Item[]): Item[][];
  /**
   * `refused`: items of an acknowledged call that the service did not store
   * and never will (e.g. heartbeats of servers that do not exist), by position
   * in `unit`; they count as rejected, the rest as delivered.
   */
  send(
    unit: Item[],
    options: { deadlineMs: number; signal: AbortSignal },
  ): Promise<{ duplicates: number; refused?: { indexes: number[]; cause: Error } }>;
  /** Positions of the items a refusal names (google.rpc.BadRequest `events[3].…`), if it names them all. */
  rejectedIndexes?(err: grpc.ServiceError, count: number): number[] | undefined;
}

interface Entry<Item> {
  item: Item;
  seq: number;
  link: SpanContext | undefined;
}

const RESOLVED_TRUE = Promise.resolve(true);
const RESOLVED_FALSE = Promise.resolve(false);
const MAX_LINKS = 128;
const tracer = trace.getTracer('@mcp/client');

type FailureKind = 'transient' | 'suspect' | 'items' | 'caller';

function classify(err: unknown): FailureKind {
  if (!isServiceError(err)) return 'items';
  switch (err.code) {
    case grpc.status.UNAVAILABLE:
    case grpc.status.DEADLINE_EXCEEDED:
    case grpc.status.ABORTED:
    case grpc.status.CANCELLED:
      return 'transient';
    case grpc.status.RESOURCE_EXHAUSTED:
      // A rate limit says when to come back; without RetryInfo it is about the message (too large): split it.
      return retryDelayMs(err.metadata) !== undefined ? 'transient' : 'items';
    case grpc.status.INTERNAL:
    case grpc.status.UNKNOWN:
    case grpc.status.DATA_LOSS:
      return 'suspect';
    case grpc.status.UNAUTHENTICATED:
    case grpc.status.PERMISSION_DENIED:
    case grpc.status.UNIMPLEMENTED:
      return 'caller';
    default:
      return 'items';
  }
}

/** Indexes named by BadRequest violations `<prefix>[i].…`, when every violation names one. */
export function violationIndexes(err: grpc.ServiceError, count: number, prefix: string): number[] | undefined {
  const violations = badRequestViolations(err.metadata);
  if (violations.length === 0) return undefined;
  const pattern = new RegExp(`^${prefix}\\[(\\d+)\\]`);
  const indexes = new Set<number>();
  for (const v of violations) {
    const m = pattern.exec(v.field);
    if (!m || Number(m[1]) >= count) return undefined;
    indexes.add(Number(m[1]));
  }
  return [...indexes].sort((a, b) => a - b);
}

export class BatchRecorder<Input, Item> {
  readonly name: string;
  private readonly maxQueueSize: number;
  private readonly maxBatchSize: number;
  private readonly scheduledDelayMs: number;
  private readonly onFull: OnFull;
  private readonly exportTimeoutMs: number;
  private readonly retryPolicy: RetryPolicy;
  private readonly maxInternalRetries: number;
  private readonly onError: (error: RecorderError<Item>) => void;
  private readonly onRetry: RecorderOptions['onRetry'];
  /** Parent of every flush span: the context active when the recorder was created. */
  private readonly flushContext: Context;

  private buffer: Entry<Item>[] = [];
  private blocked: Array<{ entry: Entry<Item>; resolve: (accepted: boolean) => void }> = [];
  private lastSeq = 0;
  /** Every entry with seq <= settledSeq is delivered, rejected or abandoned. */
  private settledSeq = 0;
  private flushWaiters: Array<{ target: number; resolve: () => void }> = [];
  private timer: NodeJS.Timeout | undefined;
  private timerDue = false;
  private pumping = false;
  private closing: Promise<RecorderStats> | undefined;
  private readonly abandon = new AbortController();
  private readonly counters = { recorded: 0, delivered: 0, duplicates: 0, dropped: 0, rejected: 0, abandoned: 0, retries: 0, batches: 0 };
  private inFlight = 0;

  constructor(
    private readonly sink: BatchSink<Item>,
    private readonly prepare: (input: Input) => Item,
    options: RecorderOptions = {},
  ) {
    this.name = sink.name;
    this.maxQueueSize = Math.max(1, options.maxQueueSize ?? 10_000);
    this.maxBatchSize = Math.max(1, Math.min(options.maxBatchSize ?? 500, this.maxQueueSize));
    this.scheduledDelayMs = options.scheduledDelayMs ?? 1_000;
    this.onFull = options.onFull ?? 'block';
    this.exportTimeoutMs = options.exportTimeoutMs ?? 10_000;
    this.retryPolicy = {
      maxAttempts: Infinity,
      initialBackoffMs: options.retry?.initialBackoffMs ?? 100,
      maxBackoffMs: options.retry?.maxBackoffMs ?? 10_000,
      multiplier: options.retry?.multiplier ?? 2,
      maxServerDelayMs: Infinity,
    };
    this.maxInternalRetries = options.maxInternalRetries ?? 5;
    this.onError =
      options.onError ??
      ((err) => process.emitWarning(`${err.message} (${err.items.length} item${err.items.length === 1 ? '' : 's'})`, 'RecorderWarning'));
    this.onRetry = options.onRetry;
    this.flushContext = context.active();
  }

  /**
   * Queues one item (ids and timestamps are assigned now, if absent).
   * Resolves true once it is buffered, false if it was dropped (onFull
   * 'drop', buffer full); with 'block' it waits for space. Rejects after
   * close() or if the item cannot be built.
   */
  record(input: Input): Promise<boolean> {
    if (this.closing) return Promise.reject(new RecorderClosedError(this.name));
    let item: Item;
    try {
      item = this.prepare(input);
    } catch (err) {
      return Promise.reject(err);
    }
    const link = trace.getSpanContext(context.active());
    if (this.blocked.length === 0 && this.buffer.length < this.maxQueueSize) {
      this.counters.recorded += 1;
      this.buffer.push({ item, seq: ++this.lastSeq, link });
      if (this.buffer.length >= this.maxBatchSize) this.kick();
      else if (!this.pumping && !this.timer) this.startTimer();
      return RESOLVED_TRUE;
    }
    if (this.onFull === 'drop') {
      this.counters.dropped += 1;
      return RESOLVED_FALSE;
    }
    this.counters.recorded += 1;
    const entry = { item, seq: ++this.lastSeq, link };
    return new Promise<boolean>((resolve) => {
      this.blocked.push({ entry, resolve });
      this.kick();
    });
  }

  /** Delivers everything recorded before this call (blocked record() calls included). */
  flush(): Promise<void> {
    const target = this.lastSeq;
    if (this.settledSeq >= target) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.flushWaiters.push({ target, resolve }));
    this.kick();
    return done;
  }

  /**
   * Refuses new records, delivers everything recorded, and resolves with the
   * final counters. What is still undelivered after `timeoutMs` (default 30 s)
   * is abandoned (counted, passed to onError) and close() rejects.
   */
  close(options: { timeoutMs?: number } = {}): Promise<RecorderStats> {
    this.closing ??= (async () => {
      const timeoutMs = options.timeoutMs ?? 30_000;
      const timeout = setTimeout(() => this.abandon.abort(new Error('close() timed out')), timeoutMs);
      try {
        await this.flush();
      } finally {
        clearTimeout(timeout);
        this.clearTimer();
      }
      const stats = this.stats;
      if (stats.abandoned > 0) {
        throw new RecorderError(`${this.name}: close() timed out after ${timeoutMs} ms; ${stats.abandoned} items abandoned`, 'abandoned', []);
      }
      return stats;
    })();
    return this.closing;
  }

  get stats(): RecorderStats {
    return {
      ...this.counters,
      queued: this.buffer.length + this.blocked.length,
      inFlight: this.inFlight,
    };
  }

  get droppedCount(): number {
    return this.counters.dropped;
  }

  // ---------------------------------------------------------------- internals

  private startTimer(): void {
    this.timer = setTimeout(
      context.bind(this.flushContext, () => {
        this.timer = undefined;
        this.timerDue = true;
        this.kick();
      }),
      this.scheduledDelayMs,
    );
    // A recorder never keeps a process alive: call close() before exiting.
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private kick(): void {
    if (!this.pumping) void this.pump();
  }

  private shouldSend(): boolean {
    if (this.buffer.length === 0) return false;
    return (
      this.buffer.length >= this.maxBatchSize ||
      this.timerDue ||
      this.closing !== undefined ||
      this.flushWaiters.length > 0 ||
      this.blocked.length > 0
    );
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    this.clearTimer();
    try {
      while (this.shouldSend()) {
        const batch = this.buffer.splice(0, this.maxBatchSize);
        this.timerDue = false;
        this.admitBlocked();
        this.inFlight = batch.length;
        await context.with(this.flushContext, () => this.deliver(batch));
        this.inFlight = 0;
        this.settledSeq = batch[batch.length - 1].seq;
        this.resolveFlushWaiters();
      }
    } finally {
      this.pumping = false;
      if (this.buffer.length > 0 && !this.timer) this.startTimer();
    }
  }

  private admitBlocked(): void {
    while (this.blocked.length > 0 && this.buffer.length < this.maxQueueSize) {
      const { entry, resolve } = this.blocked.shift()!;
      this.buffer.push(entry);
      resolve(true);
    }
  }

  private resolveFlushWaiters(): void {
    if (this.flushWaiters.length === 0) return;
    const pending: typeof this.flushWaiters = [];
    for (const w of this.flushWaiters) {
      if (w.target <= this.settledSeq) w.resolve();
      else pending.push(w);
    }
    this.flushWaiters = pending;
  }

  /** Sends one batch until every item in it is delivered, rejected or abandoned. Never throws. */
  private async deliver(batch: Entry<Item>[]): Promise<void> {
    const links: Link[] = [];
    const seen = new Set<string>();
    for (const e of batch) {
      if (!e.link || seen.has(e.link.spanId)) continue;
      seen.add(e.link.spanId);
      links.push({ context: e.link });
      if (links.length >= MAX_LINKS) break;
    }
    await tracer.startActiveSpan(`${this.name} flush`, { links, attributes: { 'mcp.batch.size': batch.length } }, async (span) => {
      const before = { ...this.counters };
      try {
        const items = batch.map((e) => e.item);
        let pending: Item[][];
        try {
          pending = this.sink.plan ? this.sink.plan(items) : [items];
        } catch (err) {
          // A bug in a sink's plan(): nothing may be lost silently.
          this.reject(items, err, 'rejected');
          pending = [];
        }
        while (pending.length > 0) {
          const unit = pending.shift()!;
          if (unit.length > 0) pending.unshift(...(await this.sendUnit(unit)));
        }
      } finally {
        span.setAttributes({
          'mcp.batch.delivered': this.counters.delivered - before.delivered,
          'mcp.batch.duplicates': this.counters.duplicates - before.duplicates,
          'mcp.batch.retries': this.counters.retries - before.retries,
        });
        if (this.counters.rejected > before.rejected || this.counters.abandoned > before.abandoned) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: 'items rejected or abandoned' });
        }
        span.end();
      }
    });
  }

  /** One unit until it is acknowledged or settled otherwise; returns the smaller units to send instead, if it was split. */
  private async sendUnit(unit: Item[]): Promise<Item[][]> {
    let failures = 0;
    let internal = 0;
    for (;;) {
      if (this.abandon.signal.aborted) {
        this.reject(unit, this.abandon.signal.reason, 'abandoned');
        return [];
      }
      try {
        const { duplicates, refused } = await this.sink.send(unit, { deadlineMs: this.exportTimeoutMs, signal: this.abandon.signal });
        const refusedAt = new Set(refused?.indexes);
        const refusedItems = unit.filter((_, i) => refusedAt.has(i));
        this.reject(refusedItems, refused?.cause, 'rejected');
        this.counters.delivered += unit.length - refusedItems.length;
        this.inFlight -= unit.length - refusedItems.length;
        this.counters.duplicates += duplicates;
        this.counters.batches += 1;
        return [];
      } catch (err) {
        if (this.abandon.signal.aborted) continue;
        const kind = classify(err);
        if (kind === 'transient' || (kind === 'suspect' && ++internal <= this.maxInternalRetries)) {
          const e = err as grpc.ServiceError;
          const serverDelayMs = retryDelayMs(e.metadata);
          const delayMs = serverDelayMs !== undefined ? serverDelayMs + jitterAbove(serverDelayMs) : backoffMs(this.retryPolicy, failures);
          failures += 1;
          this.counters.retries += 1;
          this.onRetry?.({ attempt: failures, code: e.code, details: e.details, delayMs, serverDelayMs, items: unit.length });
          trace.getActiveSpan()?.addEvent('mcp.recorder.retry', { 'rpc.grpc.status_code': e.code, 'mcp.retry.delay_ms': Math.round(delayMs) });
          // Nobody waiting (no flush()/close()): the wait does not keep the process alive. Someone waiting: it does,
          // so `await recorder.close()` in a process with nothing else to do keeps retrying until its timeout.
          const waitedFor = this.closing !== undefined || this.flushWaiters.length > 0;
          await sleep(delayMs, this.abandon.signal, !waitedFor).catch(() => undefined);
          continue;
        }
        if (kind === 'caller') {
          this.reject(unit, err, 'rejected');
          return [];
        }
        // The items themselves were refused: isolate the culprits, send the rest.
        let named: number[] | undefined;
        try {
          named = isServiceError(err) ? this.sink.rejectedIndexes?.(err, unit.length) : undefined;
        } catch {
          named = undefined;
        }
        if (named && named.length > 0) {
          const culprits = new Set(named);
          this.reject(unit.filter((_, i) => culprits.has(i)), err, 'rejected');
          const rest = unit.filter((_, i) => !culprits.has(i));
          return rest.length > 0 ? [rest] : [];
        }
        if (unit.length === 1) {
          this.reject(unit, err, 'rejected');
          return [];
        }
        const mid = unit.length >> 1;
        return [unit.slice(0, mid), unit.slice(mid)];
      }
    }
  }

  private reject(items: Item[], cause: unknown, kind: 'rejected' | 'abandoned'): void {
    if (items.length === 0) return;
    this.counters[kind] += items.length;
    this.inFlight -= items.length;
    const why = isServiceError(cause) ? `${grpc.status[cause.code]}: ${cause.details}` : cause instanceof Error ? cause.message : String(cause);
    const error = new RecorderError<Item>(`${this.name}: ${items.length} item(s) ${kind}: ${why}`, kind, items, cause);
    try {
      this.onError(error);
    } catch {
      // a throwing callback must not stop delivery
    }
  }
}
