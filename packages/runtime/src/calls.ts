/**
 * Wrappers that turn async functions into grpc-js handlers, so every handler
 * in every service gets the same cancellation, deadline, error mapping and
 * per-call log line without writing any of it.
 */
import type { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { CancelledError, DeadlineExceededError, StatusError, classifyError } from './errors';
import type { Logger } from './logger';
import { platformMetrics } from './metrics';
import type { Permission, Principal } from './auth/principal';
import { wellFormed, wellFormedStream } from './request-decoding';

export interface CallContext {
  /** Full method path, e.g. `/mcp.connectionlog.v1.ConnectionLogService/RecordEvents`. */
  method: string;
  metadata: grpc.Metadata;
  peer: string;
  deadline: Date | undefined;
  /** Aborts when the client cancels or the deadline passes; the reason is a CancelledError or DeadlineExceededError. */
  signal: AbortSignal;
  /** Bound to this call's method. */
  logger: Logger;
  /** ms left before the deadline, or undefined */
  remainingMs(): number | undefined;
  /** CN of the verified client certificate (mutual TLS), if any. */
  clientCertificateName: string | undefined;
  /** The authenticated caller; set before the handler runs. */
  principal: Principal;
}

/**
 * Admits a call before its handler runs: establishes the principal
 * (UNAUTHENTICATED otherwise), applies lockouts and rate limits
 * (RESOURCE_EXHAUSTED), and checks the RPC's permission (PERMISSION_DENIED).
 */
export interface CallGuard {
  admit(ctx: Omit<CallContext, 'principal'>, permission: Permission): Promise<Principal>;
}

export interface ServerStreamWriter<Res> {
  /**
   * Resolves once the message is accepted; when the client reads slower than
   * the handler writes, waits until the transport drains (backpressure), and
   * rejects with the signal's reason once the call is cancelled.
   */
  write(message: Res): Promise<void>;
}

export interface HandlerDeps {
  logger: Logger;
  guard: CallGuard;
}

/** Each wrapper takes the permission its RPC requires; the guard checks it before `fn` runs. */
export interface CallHandlers {
  unary<Req, Res>(permission: Permission, fn: (req: Req, ctx: CallContext) => Promise<Res>): grpc.handleUnaryCall<Req, Res>;
  /** The call ends when `fn` resolves. */
  serverStreaming<Req, Res>(
    permission: Permission,
    fn: (req: Req, stream: ServerStreamWriter<Res>, ctx: CallContext) => Promise<void>,
  ): grpc.handleServerStreamingCall<Req, Res>;
  /**
   * `requests` yields the next message only when asked for it, so a slow
   * handler slows the client through HTTP/2 flow control. The call ends when
   * `fn` resolves.
   */
  bidiStreaming<Req, Res>(
    permission: Permission,
    fn: (requests: AsyncIterable<Req>, stream: ServerStreamWriter<Res>, ctx: CallContext) => Promise<void>,
  ): grpc.handleBidiStreamingCall<Req, Res>;
}

/** Codes that mean the server failed; everything else is the caller's doing (or choice) and logs at warn. */
const SERVER_FAILURES = new Set([grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.DATA_LOSS]);
/** For these the log line carries the underlying error, since the client-facing message hides it. */
const CAUSE_WORTH_LOGGING = new Set([...SERVER_FAILURES, grpc.status.UNAVAILABLE]);
/** setTimeout fires at once for longer delays; such deadlines are left to grpc-js alone. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** What every kind of server call has (grpc-js does not export its ServerSurfaceCall type). */
type ServerCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'metadata' | 'getPath' | 'getPeer' | 'getDeadline' | 'getAuthContext'> &
  Pick<EventEmitter, 'on' | 'off'>;

interface CallScope {
  ctx: Omit<CallContext, 'principal'>;
  succeeded(): void;
  /** Logs the failure and returns the status to send. */
  failed(err: unknown): grpc.ServiceError;
}

function deadlineOf(call: ServerCall): Date | undefined {
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? new Date(ms) : undefined;
}

function certificateName(call: ServerCall): string | undefined {
  const subject = call.getAuthContext?.()?.sslPeerCertificate?.subject as { CN?: string | string[] } | undefined;
  const cn = subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn || undefined;
}

function openCall(call: ServerCall, logger: Logger): CallScope {
  const startedAt = performance.now();
  const method = call.getPath();
  const deadline = deadlineOf(call);
  const controller = new AbortController();
  const remainingMs = () => (deadline ? Math.max(0, deadline.getTime() - Date.now()) : undefined);

  const onDeadline = () => controller.abort(new DeadlineExceededError('deadline exceeded'));
  // grpc-js also reports its own deadline expiry as a cancellation.
  const onCancelled = () => {
    if (controller.signal.aborted) return;
    if (remainingMs() === 0) onDeadline();
    else controller.abort(new CancelledError('the client cancelled the call'));
  };
  call.on('cancelled', onCancelled);
  const delay = remainingMs();
  const timer = delay !== undefined && delay <= MAX_TIMER_DELAY_MS ? setTimeout(onDeadline, delay) : undefined;

  const end = (error: grpc.ServiceError | undefined, cause?: unknown) => {
    clearTimeout(timer);
    call.off('cancelled', onCancelled);
    // Once the call was cancelled, the client saw the cancellation, whatever the handler did next.
    const code = controller.signal.aborted
      ? (controller.signal.reason as StatusError).code
      : (error?.code ?? grpc.status.OK);
    const durationMs = Math.round((performance.now() - startedAt) * 10) / 10;
    platformMetrics.rpc(method, grpc.status[code], durationMs);
    const line = {
      method,
      code: grpc.status[code],
      duration_ms: durationMs,
      ...(error && { details: error.details }),
      ...(CAUSE_WORTH_LOGGING.has(code) && cause !== undefined && { err: cause }),
    };
    // A client ending its own call (a tail or watch it no longer needs) is routine, and at warn
    // a thousand ended streams cost a thousand log lines at once.
    if (code === grpc.status.OK || code === grpc.status.CANCELLED) logger.debug(line, 'call');
    else if (SERVER_FAILURES.has(code)) logger.error(line, 'call');
    else logger.warn(line, 'call');
  };

  return {
    ctx: {
      method,
      metadata: call.metadata,
      peer: call.getPeer(),
      clientCertificateName: certificateName(call),
      deadline,
      signal: controller.signal,
      logger: logger.child({ method }),
      remainingMs,
    },
    succeeded: () => end(undefined),
    failed(err) {
      const error = classifyError(err);
      end(error, err);
      return error;
    },
  };
}

type ServerStream<Res> = grpc.ServerWritableStream<unknown, Res> | grpc.ServerDuplexStream<unknown, Res>;

function streamWriter<Res>(call: ServerStream<Res>, signal: AbortSignal): ServerStreamWriter<Res> {
  return {
    write(message) {
      if (signal.aborted) return Promise.reject(signal.reason);
      if (call.write(message)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const settle = (outcome: () => void) => () => {
          call.off('drain', onDrain);
          signal.removeEventListener('abort', onAbort);
          outcome();
        };
        const onDrain = settle(resolve);
        const onAbort = settle(() => reject(signal.reason));
        call.once('drain', onDrain);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}

function endStream(call: ServerStream<unknown>, scope: CallScope, work: Promise<void>): void {
  work.then(
    () => {
      if (call.cancelled) {
        // A cancelled stream never emits 'finish': its status has to be reported as an error,
        // or the server span (which ends on 'finish' or 'error') would never end or be exported.
        call.emit('error', scope.failed(scope.ctx.signal.reason));
        return;
      }
      scope.succeeded();
      call.end();
    },
    (err: unknown) => {
      // grpc-js turns an 'error' event on a server stream into the call's final status.
      call.emit('error', scope.failed(err));
    },
  );
}

/** Admits the call, then runs the handler with the principal in its context. */
async function admitted<T>(guard: CallGuard, scope: CallScope, permission: Permission, run: (ctx: CallContext) => Promise<T>): Promise<T> {
  const principal = await guard.admit(scope.ctx, permission);
  const ctx: CallContext = { ...scope.ctx, principal, logger: scope.ctx.logger.child({ principal: principal.userId }) };
  return run(ctx);
}

export function createCallHandlers(deps: HandlerDeps): CallHandlers {
  const { logger, guard } = deps;
  return {
    unary<Req, Res>(permission: Permission, fn: (req: Req, ctx: CallContext) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
      return (call, callback) => {
        const scope = openCall(call, logger);
        admitted(guard, scope, permission, (ctx) => fn(wellFormed(call.request), ctx)).then(
          (response) => {
            scope.succeeded();
            callback(null, response);
          },
          (err: unknown) => callback(scope.failed(err)),
        );
      };
    },
    serverStreaming<Req, Res>(
      permission: Permission,
      fn: (req: Req, stream: ServerStreamWriter<Res>, ctx: CallContext) => Promise<void>,
    ): grpc.handleServerStreamingCall<Req, Res> {
      return (call) => {
        const scope = openCall(call, logger);
        endStream(call, scope, admitted(guard, scope, permission, (ctx) => fn(wellFormed(call.request), streamWriter(call, ctx.signal), ctx)));
      };
    },
    bidiStreaming<Req, Res>(
      permission: Permission,
      fn: (requests: AsyncIterable<Req>, stream: ServerStreamWriter<Res>, ctx: CallContext) => Promise<void>,
    ): grpc.handleBidiStreamingCall<Req, Res> {
      return (call) => {
        const scope = openCall(call, logger);
        // Leaving the loop early must not destroy the call before its status is sent.
        const requests = wellFormedStream<Req>(call.iterator({ destroyOnReturn: false }));
        endStream(call, scope, admitted(guard, scope, permission, (ctx) => fn(requests, streamWriter(call, ctx.signal), ctx)));
      };
    },
  };
}
