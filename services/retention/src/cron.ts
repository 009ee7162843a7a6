/**
 * What the Kubernetes CronJobs run:
 *
 *   node dist/cron.js run [--policy all|<table>] [--dry-run] [--deadline-ms 600000]
 *
 * Calls RetentionService.RunRetention at RETENTION_ADDRESS (default
 * 127.0.0.1:50054) with the API key in MCP_API_KEY, prints the run as JSON on
 * stdout and exits 0 only when the run succeeded (1 when it failed or the
 * call did, 2 on bad usage). The call carries the active trace context
 * (W3C traceparent), so with tracing preloaded
 * (`node --require @mcp/runtime/dist/telemetry-preload.js dist/cron.js …`)
 * CronJob → service → SQL is one trace.
 */
import * as grpc from '@grpc/grpc-js';
import { retention } from '@mcp/proto';
// Only this module of the runtime: the CLI stays light (no ORM, no database driver).
import { shutdownTelemetry } from '@mcp/runtime/dist/telemetry';
import { context, isSpanContextValid, propagation, SpanStatusCode, trace } from '@opentelemetry/api';
import { parseArgs } from 'node:util';

const USAGE = 'usage: cron.js run [--policy all|<table>] [--dry-run] [--deadline-ms N]';

interface Invocation {
  policy: string;
  dryRun: boolean;
  deadlineMs: number;
}

function parse(argv: string[]): Invocation | string {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        policy: { type: 'string', default: 'all' },
        'dry-run': { type: 'boolean', default: false },
        'deadline-ms': { type: 'string', default: '600000' },
      },
    });
  } catch (err) {
    return (err as Error).message;
  }
  if (parsed.positionals.length !== 1 || parsed.positionals[0] !== 'run') return 'expected the command "run"';
  const deadlineMs = Number(parsed.values['deadline-ms']);
  if (!Number.isInteger(deadlineMs) || deadlineMs <= 0) return '--deadline-ms must be a positive integer';
  return { policy: parsed.values.policy!, dryRun: parsed.values['dry-run']!, deadlineMs };
}

function runRetention(client: retention.RetentionServiceClient, inv: Invocation, metadata: grpc.Metadata): Promise<retention.RunRetentionResponse> {
  return new Promise((resolve, reject) =>
    client.runRetention(
      retention.RunRetentionRequest.fromPartial({ policy: inv.policy, dryRun: inv.dryRun }),
      metadata,
      { deadline: Date.now() + inv.deadlineMs },
      (err, res) => (err ? reject(err) : resolve(res)),
    ),
  );
}

async function main(): Promise<number> {
  const inv = parse(process.argv.slice(2));
  if (typeof inv === 'string') {
    process.stderr.write(`${inv}\n${USAGE}\n`);
    return 2;
  }
  const address = process.env.RETENTION_ADDRESS || '127.0.0.1:50054';
  const client = new retention.RetentionServiceClient(address, grpc.credentials.createInsecure());
  const tracer = trace.getTracer('mcp-retention-cron');
  return tracer.startActiveSpan('retention cron run', async (span) => {
    const metadata = new grpc.Metadata();
    if (process.env.MCP_API_KEY) metadata.set('authorization', `Bearer ${process.env.MCP_API_KEY}`);
    propagation.inject(context.active(), metadata, { set: (carrier, key, value) => carrier.set(key, value) });
    // The trace to open in Jaeger; absent when tracing is off.
    const traceId = isSpanContextValid(span.spanContext()) ? span.spanContext().traceId : undefined;
    try {
      const { run } = await runRetention(client, inv, metadata);
      const ok = run?.status === retention.RunStatus.RUN_STATUS_SUCCEEDED;
      process.stdout.write(`${JSON.stringify({ ok, trace_id: traceId, run: run && retention.Run.toJSON(run) })}\n`);
      span.setStatus({ code: ok ? SpanStatusCode.OK : SpanStatusCode.ERROR });
      return ok ? 0 : 1;
    } catch (err) {
      const e = err as grpc.ServiceError;
      process.stdout.write(`${JSON.stringify({ ok: false, trace_id: traceId, code: grpc.status[e.code] ?? 'UNKNOWN', error: e.details ?? e.message })}\n`);
      span.setStatus({ code: SpanStatusCode.ERROR, message: e.details ?? e.message });
      return 1;
    } finally {
      span.end();
      client.close();
    }
  });
}

main().then(
  async (code) => {
    // Flushes the trace when tracing was preloaded; a no-op otherwise.
    await shutdownTelemetry().catch(() => undefined);
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
