import { trace } from '@opentelemetry/api';
import pino from 'pino';
import { createRedactor, type Redactor } from './redaction';

export type Logger = pino.Logger;

export interface LoggerOptions {
  /** Added to every line as `service`. */
  service: string;
  /** pino level name; default "info". */
  level?: string;
  /** Default: the default redaction policy. */
  redactor?: Redactor;
  /** Default: stdout. Tests pass a stream to read the lines back. */
  destination?: pino.DestinationStream;
}

/**
 * JSON lines with the service name, the active span's trace and span ids
 * (so a log line leads to its trace), and every logged object passed through
 * the redactor so secrets never reach a log line.
 */
export function createLogger(options: LoggerOptions): Logger {
  const redactor = options.redactor ?? createRedactor();
  const logger = pino(
    {
      level: options.level ?? 'info',
      base: { service: options.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => redactor.redact(object),
      },
      mixin() {
        const span = trace.getActiveSpan();
        if (!span) return {};
        const { traceId, spanId } = span.spanContext();
        return { trace_id: traceId, span_id: spanId };
      },
      hooks: {
        // The message string bypasses formatters.log; mask it too.
        logMethod(args, method) {
          const masked = args.map((arg) => (typeof arg === 'string' ? redactor.redactText(arg) : arg));
          method.apply(this, masked as Parameters<typeof method>);
        },
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
  // pino serializes child bindings without formatters.log; children inherit this override through their prototype.
  const pinoChild = logger.child;
  logger.child = function (this: Logger, bindings, childOptions) {
    return pinoChild.call(this, redactor.redact(bindings), childOptions);
  } as Logger['child'];
  return logger;
}
