/**
 * The one way a service starts: gRPC server with health (driven by a
 * readiness check), reflection, limits and keepalive from configuration, and
 * a graceful shutdown that drains in-flight calls before closing resources.
 */
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { PROTO_ROOT } from '@mcp/proto';
import { HealthImplementation, protoPath as healthProtoPath, type ServingStatus } from 'grpc-health-check';
import type { GrpcSettings, PlatformConfig } from './config';
import type { Logger } from './logger';
import { withStrictRequestDecoding } from './request-decoding';

export const HEALTH_SERVICE = 'grpc.health.v1.Health';
/**
 * The health name for liveness probes: SERVING while the process runs. The
 * overall name ('') and each service's name follow readiness (the database);
 * a liveness probe on those would restart every pod during a database outage.
 */
export const LIVENESS_HEALTH_NAME = 'liveness';
/** grpc-health-check ships its proto as <dir>/health/v1/health.proto. */
const HEALTH_PROTO_DIR = path.resolve(path.dirname(healthProtoPath), '..', '..');

export interface ServiceRegistration {
  /** e.g. 'mcp.connectionlog.v1.ConnectionLogService' */
  fullName: string;
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** proto file relative to PROTO_ROOT from @mcp/proto */
  protoFile: string;
}

export interface StartServerOptions {
  /** e.g. 'connection-log' */
  serviceName: string;
  services: ServiceRegistration[];
  config: PlatformConfig;
  logger: Logger;
  /** Default: config.grpcHost. */
  host?: string;
  /** 0 = any free port */
  port: number;
  /** true when the database is reachable and migrated */
  readiness: () => Promise<boolean>;
  /** run after the server stopped accepting and drained, e.g. close the pool, flush telemetry */
  onShutdown?: Array<() => Promise<void>>;
  /** Default: plaintext, logged at warn. */
  credentials?: grpc.ServerCredentials;
}

export interface RunningServer {
  port: number;
  /** host:port actually bound. */
  address: string;
  server: grpc.Server;
  /**
   * false takes the server out of rotation (health NOT_SERVING) whatever the
   * readiness check says; true hands the status back to the readiness check.
   */
  setServing(serving: boolean): void;
  /** The status health checks currently report. */
  isServing(): boolean;
  /** Idempotent: every call returns the same promise. */
  shutdown(reason: string): Promise<void>;
}

function serverOptions(grpcSettings: GrpcSettings): grpc.ServerOptions {
  // grpc.keepalive_permit_without_calls and grpc.http2.min_ping_interval_without_data_ms are
  // client/C-core options that grpc-js servers ignore, so they are not set here.
  return {
    'grpc.max_receive_message_length': grpcSettings.max_receive_message_bytes,
    'grpc.max_send_message_length': grpcSettings.max_send_message_bytes,
    'grpc.keepalive_time_ms': grpcSettings.keepalive_time_ms,
    'grpc.keepalive_timeout_ms': grpcSettings.keepalive_timeout_ms,
  };
}

/** The registered services' protos plus health, for reflection (which needs proto-loader descriptors). */
function reflectionDefinition(services: ServiceRegistration[]): protoLoader.PackageDefinition {
  const files = [...new Set(services.map((s) => s.protoFile)), path.relative(HEALTH_PROTO_DIR, healthProtoPath)];
  return protoLoader.loadSync(files, { includeDirs: [PROTO_ROOT, HEALTH_PROTO_DIR] });
}

function bind(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Lets in-flight calls finish; cancels whatever is still running after `graceMs`. */
function drain(server: grpc.Server, graceMs: number, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const deadline = setTimeout(() => {
      logger.warn({ grace_ms: graceMs }, 'calls still running after the shutdown grace period: cancelling them');
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(deadline);
      resolve();
    });
  });
}

/** A readiness check slower than this counts as not ready, so one hung check cannot stall health. */
function withTimeout(check: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`readiness check did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([check, timeout]).finally(() => clearTimeout(timer));
}

export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const { config, logger, services } = options;
  const { health_probe_interval_ms: probeIntervalMs, shutdown_grace_ms: graceMs } = config.grpc;
  const healthNames = ['', ...services.map((s) => s.fullName)];

  const server = new grpc.Server(serverOptions(config.grpc));
  const health = new HealthImplementation({
    ...Object.fromEntries(healthNames.map((name) => [name, 'NOT_SERVING'])),
    [LIVENESS_HEALTH_NAME]: 'SERVING',
  });
  health.addToServer(server);
  const reflected = [...services.map((s) => s.fullName), HEALTH_SERVICE];
  new ReflectionService(reflectionDefinition(services), { services: reflected }).addToServer(server);
  for (const service of services) server.addService(withStrictRequestDecoding(service.definition), service.implementation);

  if (!options.credentials) {
    logger.warn(
      { require_tls: config.security.global_policy.require_tls },
      `${options.serviceName} serves PLAINTEXT gRPC: pass TLS credentials, or terminate TLS in front of it`,
    );
  }
  const host = options.host ?? config.grpcHost;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const credentials = options.credentials ?? grpc.ServerCredentials.createInsecure();
  const port = await bind(server, `${hostPart}:${options.port}`, credentials);
  const address = `${hostPart}:${port}`;
  for (const service of services) logger.info({ grpc_service: service.fullName, address }, 'listening');

  let ready = false;
  let wanted = true;
  let serving = false;
  const applyStatus = () => {
    const next = ready && wanted;
    if (next === serving) return;
    serving = next;
    const status: ServingStatus = serving ? 'SERVING' : 'NOT_SERVING';
    for (const name of healthNames) health.setStatus(name, status);
    logger.info({ status }, 'health status changed');
  };

  let probing = true;
  let probeTimer: NodeJS.Timeout | undefined;
  let lastProbe: { ready: boolean; problem?: string } | undefined;
  const probe = async () => {
    let result: { ready: boolean; problem?: string; err?: unknown };
    try {
      result = { ready: await withTimeout(options.readiness(), probeIntervalMs) };
    } catch (err) {
      result = { ready: false, problem: String(err), err };
    }
    if (!probing) return;
    // Logged when the outcome changes, not on every probe.
    if (lastProbe?.ready !== result.ready || lastProbe.problem !== result.problem) {
      if (result.ready) logger.info('ready');
      else logger.warn(result.err ? { err: result.err } : {}, 'not ready');
    }
    lastProbe = result;
    ready = result.ready;
    applyStatus();
    probeTimer = setTimeout(probe, probeIntervalMs);
  };
  void probe();

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> =>
    (stopping ??= (async () => {
      logger.info({ reason, grace_ms: graceMs }, `${options.serviceName} shutting down`);
      probing = false;
      clearTimeout(probeTimer);
      wanted = false;
      applyStatus();
      await drain(server, graceMs, logger);
      for (const hook of options.onShutdown ?? []) {
        try {
          await hook();
        } catch (err) {
          logger.error({ err }, 'shutdown hook failed');
        }
      }
      logger.info({ reason }, `${options.serviceName} stopped`);
    })());

  return {
    port,
    address,
    server,
    setServing(next) {
      wanted = next;
      applyStatus();
    },
    isServing: () => serving,
    shutdown,
  };
}

/** SIGTERM/SIGINT shut the server down, then exit 0 (1 if shutdown failed); a second signal exits at once. */
export function installShutdownSignals(running: RunningServer, logger: Logger): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      logger.warn({ signal }, 'second signal during shutdown: exiting now');
      process.exit(1);
    }
    signalled = true;
    running.shutdown(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
