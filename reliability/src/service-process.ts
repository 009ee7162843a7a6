/**
 * The built services as child processes (dist/main.js), as they are
 * deployed: configured only by their environment, stopped by signals.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { freePort } from '@mcp/db';
import { waitForServing } from '@mcp/runtime';

export const SERVICE_PACKAGES = {
  'connection-log': '@mcp/connection-log',
  'status-sync': '@mcp/status-sync',
  audit: '@mcp/audit',
  retention: '@mcp/retention',
} as const;
export type ServiceName = keyof typeof SERVICE_PACKAGES;

/** Path of a built file of a service package, e.g. distFile('retention', 'cron.js'). */
export function distFile(service: ServiceName, file = 'main.js'): string {
  return path.join(path.dirname(require.resolve(`${SERVICE_PACKAGES[service]}/package.json`)), 'dist', file);
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  databaseUrl: string;
  /** Default: a free port. Pass the previous one to restart "the same" service. */
  port?: number;
  /** Extra environment (SHUTDOWN_GRACE_MS, RETENTION_BATCH_SIZE, …). */
  env?: Record<string, string>;
  /** Wait for SERVING before resolving (default true). False for a service whose database is not there yet. */
  waitServing?: boolean;
  servingTimeoutMs?: number;
}

const STDERR_KEEP = 64 * 1024;

export class ServiceProcess {
  readonly exited: Promise<Exit>;
  private stderr = '';
  private exit: Exit | undefined;

  private constructor(
    readonly name: ServiceName,
    readonly port: number,
    readonly child: ChildProcess,
    readonly options: StartOptions,
  ) {
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-STDERR_KEEP);
    });
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
  }

  static async start(name: ServiceName, options: StartOptions): Promise<ServiceProcess> {
    const port = options.port ?? (await freePort());
    const child = spawn(process.execPath, [distFile(name)], {
      env: {
        ...process.env,
        DATABASE_URL: options.databaseUrl,
        GRPC_HOST: '127.0.0.1',
        GRPC_PORT: String(port),
        LOG_LEVEL: process.env.RELIABILITY_LOG_LEVEL ?? 'warn',
        SHUTDOWN_GRACE_MS: '10000',
        ...options.env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const service = new ServiceProcess(name, port, child, options);
    if (options.waitServing ?? true) {
      await Promise.race([
        waitForServing(service.address, options.servingTimeoutMs ?? 30_000),
        service.exited.then((e) => {
          throw new Error(`${name} exited during start (${JSON.stringify(e)}): ${service.stderrTail()}`);
        }),
      ]);
    }
    return service;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGTERM and wait for the exit. */
  async stop(): Promise<Exit> {
    this.signal('SIGTERM');
    return this.exited;
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<Exit> {
    this.signal('SIGKILL');
    return this.exited;
  }

  /** A new process of the same service on the same port and database (this one must have exited). */
  async restart(options: Partial<StartOptions> = {}): Promise<ServiceProcess> {
    if (this.running) throw new Error(`${this.name} (pid ${this.pid}) is still running`);
    return ServiceProcess.start(this.name, { ...this.options, ...options, port: this.port });
  }

  stderrTail(chars = 4_000): string {
    return this.stderr.slice(-chars);
  }
}

/** Stops whatever is still running (test teardown): SIGKILL, since a failed scenario may have left it stuck. */
export async function killAll(services: Iterable<ServiceProcess | undefined>): Promise<void> {
  await Promise.all([...services].map((s) => (s?.running ? s.kill() : undefined)));
}
