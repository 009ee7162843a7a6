import * as grpc from '@grpc/grpc-js';
import { context } from '@opentelemetry/api';
import { decodeRetryDelayMs as retryDelayMs } from '@mcp/proto';

export interface RetryPolicy {
  /** Attempts of one unary call, the first included. Default 5; 1 disables retries. */
  maxAttempts: number;
  /** Backoff before the first retry is drawn from [0, initialBackoffMs]. Default 100. */
  initialBackoffMs: number;
  /** Ceiling of the exponential backoff. Default 5 000. */
  maxBackoffMs: number;
  multiplier: number;
  /** A RESOURCE_EXHAUSTED whose RetryInfo asks to wait longer than this is not retried. Default 60 000. */
  maxServerDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 5_000,
  multiplier: 2,
  maxServerDelayMs: 60_000,
};

export function isServiceError(err: unknown): err is grpc.ServiceError {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number' && 'details' in err;
}

/** Exponential backoff with full jitter: uniform in [0, min(max, initial × multiplier^retry)]. */
export function backoffMs(policy: RetryPolicy, retry: number): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** retry);
  return Math.random() * ceiling;
}

export type RetryDecision = { retry: false } | { retry: true; delayMs: number; serverDelayMs?: number };

/**
 * Whether a failed unary attempt may be sent again, and after how long.
 * - UNAVAILABLE: always (nothing reached a handler, or the server is draining).
 * - DEADLINE_EXCEEDED, and UNKNOWN (the service lost its database connection
 *   while committing): only for idempotent methods (reads, and writes whose
 *   requests carry client-assigned ids): the first attempt may have been applied.
 * - RESOURCE_EXHAUSTED with a google.rpc.RetryInfo: after the server's delay
 *   (a rate-limit refusal happens before the handler). Without one (e.g. a
 *   message over the size limit) it is final.
 * - Everything else (INVALID_ARGUMENT, PERMISSION_DENIED, FAILED_PRECONDITION,
 *   INTERNAL, …): never.
 */
export function retryDecision(err: unknown, idempotent: boolean, policy: RetryPolicy, retry: number): RetryDecision {
  if (!isServiceError(err)) return { retry: false };
  switch (err.code) {
    case grpc.status.UNAVAILABLE:
      return { retry: true, delayMs: backoffMs(policy, retry) };
    case grpc.status.DEADLINE_EXCEEDED:
    case grpc.status.UNKNOWN:
      return idempotent ? { retry: true, delayMs: backoffMs(policy, retry) } : { retry: false };
    case grpc.status.RESOURCE_EXHAUSTED: {
      const serverDelayMs = retryDelayMs(err.metadata);
      if (serverDelayMs === undefined || serverDelayMs > policy.maxServerDelayMs) return { retry: false };
      return { retry: true, delayMs: serverDelayMs + jitterAbove(serverDelayMs), serverDelayMs };
    }
    default:
      return { retry: false };
  }
}

/** A little spread on top of a server-given delay, so callers refused together do not return together. */
export function jitterAbove(delayMs: number): number {
  return Math.random() * Math.min(250, delayMs * 0.1);
}

export class AbortedByCallerError extends Error {
  constructor(reason?: unknown) {
    super(reason instanceof Error ? reason.message : 'aborted');
    this.name = 'AbortError';
  }
}

/**
 * Waits `ms`, or rejects when `signal` aborts. The timer callback is bound
 * to the caller's OpenTelemetry context, so whatever runs after the wait
 * (the next attempt) belongs to the same trace. `unref`: a pending retry
 * alone does not keep the process alive.
 */
export function sleep(ms: number, signal?: AbortSignal, unref = false): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedByCallerError(signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortedByCallerError(signal?.reason));
    };
    const timer = setTimeout(
      context.bind(context.active(), () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }),
      Math.max(0, ms),
    );
    if (unref) timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
