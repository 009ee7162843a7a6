import type { NodeSDK } from '@opentelemetry/sdk-node';

let sdk: NodeSDK | undefined;

/** Health probes and reflection would otherwise fill the traces; grpc instrumentation matches bare method names. */
const UNTRACED_GRPC_METHODS = ['Check', 'Watch', 'ServerReflectionInfo'];

/** OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none switch tracing off. */
export function telemetryDisabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((name) => name.trim().toLowerCase());
  return env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true' || exporters.includes('none');
}

/**
 * Starts tracing (OTLP over HTTP, gRPC and pg instrumentation), configured
 * only by the standard OTEL_* variables (OTEL_SERVICE_NAME,
 * OTEL_EXPORTER_OTLP_ENDPOINT, ...). Must run before @grpc/grpc-js and pg are
 * loaded, which is what telemetry-preload does. Returns whether it started.
 */
export function startTelemetry(): boolean {
  if (sdk || telemetryDisabled()) return false;
  // Loaded here rather than imported: the SDK takes ~0.5 s to load, and most importers of this package never start it.
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const { OTLPTraceExporter } =
    require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
  const { GrpcInstrumentation } =
    require('@opentelemetry/instrumentation-grpc') as typeof import('@opentelemetry/instrumentation-grpc');
  const { PgInstrumentation } =
    require('@opentelemetry/instrumentation-pg') as typeof import('@opentelemetry/instrumentation-pg');
  sdk = new NodeSDK({
    traceExporter: new OTLPTraceExporter(),
    metricReaders: metricReaders(),
    // Logs go to stdout (pino, with trace and span ids), not through OTLP.
    logRecordProcessors: [],
    instrumentations: [new GrpcInstrumentation({ ignoreGrpcMethods: UNTRACED_GRPC_METHODS }), new PgInstrumentation()],
  });
  sdk.start();
  return true;
}

/** OTLP metrics unless OTEL_METRICS_EXPORTER=none; interval from OTEL_METRIC_EXPORT_INTERVAL (default 60 s). */
function metricReaders(env: NodeJS.ProcessEnv = process.env) {
  if ((env.OTEL_METRICS_EXPORTER ?? '').split(',').some((name) => name.trim().toLowerCase() === 'none')) return [];
  const { PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics') as typeof import('@opentelemetry/sdk-metrics');
  const { OTLPMetricExporter } =
    require('@opentelemetry/exporter-metrics-otlp-http') as typeof import('@opentelemetry/exporter-metrics-otlp-http');
  const interval = Number(env.OTEL_METRIC_EXPORT_INTERVAL) || 60_000;
  return [new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), exportIntervalMillis: interval })];
}

/** Flushes and stops tracing; a no-op when it was never started. Meant as a startServer onShutdown hook. */
export async function shutdownTelemetry(): Promise<void> {
  const running = sdk;
  sdk = undefined;
  await running?.shutdown();
}
