/**
 * The server spans this process starts, kept for assertions. Import it before
 * anything that loads @grpc/grpc-js: the instrumentation patches grpc-js as it
 * is first required, as the telemetry preload does for a deployed service.
 */
import { SpanKind } from '@opentelemetry/api';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';

const started: Span[] = [];
/** Spans as they start, so a test can also see one that never ends. */
const recorder: SpanProcessor = {
  onStart: (span) => void started.push(span),
  onEnd: () => undefined,
  forceFlush: async () => undefined,
  shutdown: async () => undefined,
};
export const telemetry = new NodeSDK({ spanProcessors: [recorder], metricReaders: [], logRecordProcessors: [], instrumentations: [new GrpcInstrumentation()] });
telemetry.start();

/** The server spans of a StatusSyncService method, e.g. 'HeartbeatBatch', oldest first, ended or not. */
export function serverSpans(method: string): ReadableSpan[] {
  return started.filter((s) => s.kind === SpanKind.SERVER && s.name === `grpc.mcp.statussync.v1.StatusSyncService/${method}`);
}
