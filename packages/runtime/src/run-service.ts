import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import tls from 'node:tls'; // the module object: a namespace import's properties are read-only
import type { DataSource } from 'typeorm';
import { PlatformGuard, UnauthenticatedDevGuard, type PlatformGuardOptions } from './auth/guard';
import type { CallGuard } from './calls';
import { NotificationHub } from './notifications';
import { ConfigError, loadConfig, type PlatformConfig } from './config';
import { databaseReady } from './db';
import { createLogger, type Logger } from './logger';
import { createRedactor, type Redactor } from './redaction';
import { installShutdownSignals, startServer, type RunningServer, type ServiceRegistration } from './server';
import { shutdownTelemetry } from './telemetry';

/** One gRPC service implementation plus its background work. */
export interface ServiceUnit {
  registration: ServiceRegistration;
  /** Background work (LISTEN connections, sweepers). Must not throw while the database is down. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface ServiceDeps {
  dataSource: DataSource;
  databaseUrl: string;
  logger: Logger;
  redactor: Redactor;
  config: PlatformConfig;
  /** Admits every call: authentication, rate limits, permissions. */
  guard: CallGuard;
  /** The process's one LISTEN connection; services add their channels. */
  hub: NotificationHub;
}

export interface StartServiceOptions {
  /** e.g. 'connection-log': the log's `service` field and the process's identity. */
  serviceName: string;
  defaultPort: number;
  createDataSource(url: string): DataSource;
  createServices(deps: ServiceDeps): ServiceUnit[];
  /** Overrides for tests; default process.env and the config file it names. */
  env?: NodeJS.ProcessEnv;
  configPath?: string;
}

export interface RunningService {
  server: RunningServer;
  dataSource: DataSource;
  logger: Logger;
  shutdown(reason: string): Promise<void>;
}

const MAX_CONNECT_DELAY_MS = 5_000;

/**
 * The whole life of a service process: config, logger, database (connected
 * in the background, so the service starts and reports NOT_SERVING while the
 * database is unreachable, and recovers without a restart), gRPC server with
 * health and reflection, and an orderly shutdown.
 */
export async function startService(options: StartServiceOptions): Promise<RunningService> {
  const env = options.env ?? process.env;
  const config = loadConfig({ env, path: options.configPath, defaultPort: options.defaultPort });
  const redactor = createRedactor(config.audit.redaction);
  const logger = createLogger({ service: options.serviceName, level: config.logLevel, redactor });
  if (!config.databaseUrl) throw new ConfigError('environment', ['DATABASE_URL is not set']);
  const databaseUrl = config.databaseUrl;
  const dataSource = options.createDataSource(databaseUrl);
  const hub = new NotificationHub(databaseUrl, [], logger);
  const guard = createGuard(config, { dataSource, hub, logger, serviceName: options.serviceName });
  const units = options.createServices({ dataSource, databaseUrl, logger, redactor, config, guard, hub });

  let stopping = false;
  const connected = connectUntilStopped(dataSource, logger, () => stopping);
  const server = await startServer({
    serviceName: options.serviceName,
    services: units.map((u) => u.registration),
    config,
    logger,
    port: config.grpcPort,
    credentials: serverCredentials(config, logger),
    readiness: () => (dataSource.isInitialized ? databaseReady(dataSource) : Promise.resolve(false)),
    onShutdown: [
      async () => {
        stopping = true;
        await Promise.all(units.map((u) => u.close()));
        await hub.stop();
        await connected;
        if (dataSource.isInitialized) await dataSource.destroy();
      },
      shutdownTelemetry,
    ],
  });
  hub.start().catch((err: Error) => logger.warn({ err: err.message }, 'LISTEN connection not ready yet; retrying'));
  await Promise.all(units.map((u) => u.start()));
  return { server, dataSource, logger, shutdown: (reason) => server.shutdown(reason) };
}

/** Entry point for a service's main.ts: starts it and exits on SIGTERM/SIGINT after draining. */
export function runService(options: StartServiceOptions): void {
  startService(options).then(
    (running) => installShutdownSignals(running.server, running.logger),
    (err: unknown) => {
      // No logger may exist yet (bad config): one JSON line on stderr, then exit.
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`${JSON.stringify({ level: 'fatal', service: options.serviceName, msg: message })}\n`);
      process.exit(1);
    },
  );
}

function createGuard(config: PlatformConfig, deps: Omit<PlatformGuardOptions, 'config'>): CallGuard {
  if (config.security.global_policy.require_authentication) return new PlatformGuard({ ...deps, config });
  deps.logger.warn('require_authentication is false: every call runs as the system account with every permission (development only)');
  return new UnauthenticatedDevGuard();
}

/** TLS from config.security.tls (mutual when a client CA is configured); otherwise plaintext, said loudly by startServer. */
function serverCredentials(config: PlatformConfig, logger: Logger): grpc.ServerCredentials | undefined {
  const tlsConfig = config.security.tls;
  if (!tlsConfig.cert_file || !tlsConfig.key_file) return undefined;
  // grpc-js uses Node's TLS stack: the floor applies to every TLS server in the process.
  (tls as { DEFAULT_MIN_VERSION: string }).DEFAULT_MIN_VERSION =
    config.security.global_policy.min_tls_version === '1.3' ? 'TLSv1.3' : 'TLSv1.2';
  const credentials = grpc.ServerCredentials.createSsl(
    tlsConfig.client_ca_file ? fs.readFileSync(tlsConfig.client_ca_file) : null,
    [{ cert_chain: fs.readFileSync(tlsConfig.cert_file), private_key: fs.readFileSync(tlsConfig.key_file) }],
    tlsConfig.require_client_certificate,
  );
  logger.info({ min_tls_version: tls.DEFAULT_MIN_VERSION, mutual: Boolean(tlsConfig.client_ca_file) }, 'serving TLS');
  return credentials;
}

async function connectUntilStopped(ds: DataSource, logger: Logger, stopped: () => boolean): Promise<void> {
  let delay = 200;
  while (!stopped()) {
    try {
      await ds.initialize();
      logger.info('database connected');
      return;
    } catch (err) {
      logger.warn({ err: err instanceof Error ? err.message : String(err), retry_in_ms: delay }, 'database unreachable');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, MAX_CONNECT_DELAY_MS);
    }
  }
}
