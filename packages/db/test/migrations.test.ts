import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appliedMigrations, migrateDown, migrateUp, migrations, MIGRATIONS_TABLE } from '../src';
import { freshDatabase, type TestDatabase } from '../src/testing';
import { connect, rows, scalar } from './helpers';

/** The four migrations of the two seeds; later ones are appended to the registry after them. */
const SEED_MIGRATIONS = [
  'CoreSchema1735689600000',
  'PartitionManagement1735689600001',
  'ConnectionLogging1735689600002',
  'AuditAndSecurity1735689600003',
];
/** A few landmarks of every seed migration, as "schema.name relkind". */
const SEED_LANDMARKS = [
  'public.users r',
  'public.user_roles r',
  'public.mcp_servers r',
  'public.partitioned_tables r',
  'public.agent_mcp_connection_logs p',
  'public.agent_mcp_connection_logs_default r',
  'public.mcp_server_status_logs p',
  'public.system_logs r',
  'public.recent_connection_activity v',
  'public.server_health_history v',
  'public.account_tool_instances v',
  'auth.users v',
  'public.audit_logs p',
  'public.audit_logs_default r',
  'public.security_events r',
  'public.audit_logs_archive r',
  'public.schema_migrations r',
];
/** Every registered migration, oldest first. */
const ALL = migrations.map((m) => new m().name as string);

const PACKAGE_DIR = path.resolve(__dirname, '..');

/** Tables, partitions, views, sequences in our schemas, as "schema.name kind". */
async function relations(url: string): Promise<string[]> {
  const c = await connect(url);
  try {
    const r = await rows<{ r: string }>(
      c,
      `SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text AS r
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('public', 'auth') AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
        ORDER BY 1`,
    );
    return r.map((x) => x.r);
  } finally {
    await c.end();
  }
}

/** Everything of ours that survives a full down would show up here. */
async function leftovers(url: string) {
  const c = await connect(url);
  try {
    const q = async (sql: string) => (await rows<{ x: string }>(c, sql)).map((r) => r.x);
    return {
      // every relation except the migrations table, its indexes and its owned sequence
      relations: await q(`SELECT n.nspname || '.' || c.relname AS x FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname IN ('public', 'auth')
                             AND c.oid <> to_regclass('public.${MIGRATIONS_TABLE}')
                             AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = c.oid
                                               AND i.indrelid = to_regclass('public.${MIGRATIONS_TABLE}'))
                             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                               AND d.refobjid = to_regclass('public.${MIGRATIONS_TABLE}') AND d.deptype = 'a')
                           ORDER BY 1`),
      migrationsTable: await q(`SELECT to_regclass('public.${MIGRATIONS_TABLE}')::text AS x`),
      functions: await q(`SELECT p.oid::regprocedure::text AS x FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                           WHERE n.nspname IN ('public', 'auth') ORDER BY 1`),
      // every type except the migrations table's row type and its array type
      types: await q(`SELECT t.typname::text AS x FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                       WHERE n.nspname IN ('public', 'auth')
                         AND coalesce((SELECT e.typrelid FROM pg_type e WHERE e.oid = t.typelem), t.typrelid)
                             IS DISTINCT FROM to_regclass('public.${MIGRATIONS_TABLE}')::oid
                       ORDER BY 1`),
      schemas: await q(`SELECT nspname::text AS x FROM pg_namespace WHERE nspname = 'auth'`),
      policies: await q(`SELECT polname::text AS x FROM pg_policy`),
      triggers: await q(`SELECT tgname::text AS x FROM pg_trigger WHERE NOT tgisinternal`),
      publicAcl: await q(`SELECT coalesce(nspacl::text, '') AS x FROM pg_namespace WHERE nspname = 'public'`),
    };
  } finally {
    await c.end();
  }
}

async function exists(url: string, regclass: string): Promise<boolean> {
  const c = await connect(url);
  try {
    return (await scalar<string | null>(c, 'SELECT to_regclass($1)::text', [regclass])) !== null;
  } finally {
    await c.end();
  }
}

describe('migrateUp / migrateDown on an empty database', () => {
  let db: TestDatabase;
  let firstRelations: string[];

  beforeAll(async () => {
    db = await freshDatabase({ migrated: false });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('starts empty', async () => {
    expect(await relations(db.url)).toEqual([]);
    expect(await appliedMigrations(MIGRATIONS_TABLE, db.url)).toEqual([]);
  });

  it('the registry starts with the four seed migrations, names unique and in timestamp order', () => {
    expect(ALL.slice(0, 4)).toEqual(SEED_MIGRATIONS);
    expect(new Set(ALL).size).toBe(ALL.length);
    const stamps = ALL.map((n) => Number(n.slice(-13)));
    expect(stamps).toEqual([...stamps].sort((a, b) => a - b));
  });

  it('applies every migration, oldest first', async () => {
    const { applied } = await migrateUp(db.url);
    expect(applied).toEqual(ALL);
    expect(await appliedMigrations(MIGRATIONS_TABLE, db.url)).toEqual(ALL);
    firstRelations = await relations(db.url);
    for (const r of SEED_LANDMARKS) expect(firstRelations).toContain(r);
  });

  it('is a no-op the second time', async () => {
    const { applied } = await migrateUp(db.url);
    expect(applied).toEqual([]);
    expect(await relations(db.url)).toEqual(firstRelations);
    const c = await connect(db.url);
    try {
      expect(await scalar(c, `SELECT count(*)::int FROM ${MIGRATIONS_TABLE}`)).toBe(ALL.length);
    } finally {
      await c.end();
    }
  });

  it('reverts one migration per step, newest first, removing exactly its objects', async () => {
    for (let n = ALL.length; n > SEED_MIGRATIONS.length; n--) {
      expect(await migrateDown(db.url)).toBe(ALL[n - 1]);
      expect(await appliedMigrations(MIGRATIONS_TABLE, db.url)).toEqual(ALL.slice(0, n - 1));
    }
    // (what the later migrations add is gone again; every seed landmark is still there)
    const seedState = await relations(db.url);
    for (const r of SEED_LANDMARKS) expect(seedState).toContain(r);

    expect(await migrateDown(db.url)).toBe('AuditAndSecurity1735689600003');
    expect(await appliedMigrations(MIGRATIONS_TABLE, db.url)).toEqual(ALL.slice(0, 3));
    for (const gone of ['audit_logs', 'audit_logs_default', 'security_events', 'audit_logs_archive']) {
      expect(await exists(db.url, gone), gone).toBe(false);
    }
    expect(await exists(db.url, 'agent_mcp_connection_logs')).toBe(true);
    {
      const c = await connect(db.url);
      try {
        expect(await scalar(c, `SELECT count(*)::int FROM partitioned_tables WHERE parent_table = 'audit_logs'`)).toBe(0);
        expect(await scalar(c, `SELECT to_regproc('create_monthly_partitions')::text`)).toBeNull();
      } finally {
        await c.end();
      }
    }

    expect(await migrateDown(db.url)).toBe('ConnectionLogging1735689600002');
    expect(await appliedMigrations(MIGRATIONS_TABLE, db.url)).toEqual(ALL.slice(0, 2));
    for (const gone of [
      'agent_mcp_connection_logs',
      'agent_mcp_connection_logs_default',
      'mcp_server_status_logs',
      'agent_mcp_connection_logs_archive',
      'system_logs',
      'recent_connection_activity',
      'server_health_history',
    ]) {
      expect(await exists(db.url, gone), gone).toBe(false);
    }
    {
      const c = await connect(db.url);
      try {
        expect(await scalar(c, `SELECT count(*)::int FROM partitioned_tables`)).toBe(0);
        // the grants to the (cluster-wide, surviving) mcp_app role are revoked
        expect(await scalar(c, `SELECT has_table_privilege('mcp_app', 'agents', 'SELECT')`)).toBe(false);
        // (PUBLIC keeps USAGE on schema public, so look at the ACLs themselves)
        const acls = await rows<{ acl: string | null }>(c, `SELECT nspacl::text AS acl FROM pg_namespace WHERE nspname IN ('public', 'auth')`);
        expect(acls).toHaveLength(2);
        for (const { acl } of acls) expect(acl ?? '').not.toContain('mcp_app');
        const tables = await relations(db.url);
        expect(tables.filter((t) => /_p\d{8} r$/.test(t))).toEqual([]);
      } finally {
        await c.end();
      }
    }
    expect(await exists(db.url, 'users')).toBe(true);

    expect(await migrateDown(db.url)).toBe('PartitionManagement1735689600001');
    expect(await appliedMigrations(MIGRATIONS_TABLE, db.url)).toEqual(ALL.slice(0, 1));
    expect(await exists(db.url, 'partitioned_tables')).toBe(false);
    expect(await exists(db.url, 'users')).toBe(true);

    expect(await migrateDown(db.url)).toBe('CoreSchema1735689600000');
    expect(await appliedMigrations(MIGRATIONS_TABLE, db.url)).toEqual([]);

    expect(await migrateDown(db.url)).toBeUndefined();
  });

  it('leaves nothing of ours behind but the migrations table', async () => {
    const left = await leftovers(db.url);
    expect(left.migrationsTable).toEqual([MIGRATIONS_TABLE]);
    expect(left.relations).toEqual([]);
    expect(left.functions).toEqual([]);
    expect(left.types).toEqual([]);
    expect(left.schemas).toEqual([]);
    expect(left.policies).toEqual([]);
    expect(left.triggers).toEqual([]);
    expect(left.publicAcl.join()).not.toContain('mcp_app');
  });

  it('migrates up again to the same tables as the first time', async () => {
    const { applied } = await migrateUp(db.url);
    expect(applied).toEqual(ALL);
    expect(await relations(db.url)).toEqual(firstRelations);
  });
});

describe('concurrent migrateUp', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDatabase({ migrated: false });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('two migrators started at once both resolve and the schema is migrated exactly once', async () => {
    const results = await Promise.all([migrateUp(db.url), migrateUp(db.url)]);
    const applied = results.map((r) => r.applied).sort((a, b) => a.length - b.length);
    expect(applied).toEqual([[], ALL]);
    const c = await connect(db.url);
    try {
      expect(await scalar(c, `SELECT count(*)::int FROM ${MIGRATIONS_TABLE}`)).toBe(ALL.length);
      expect(await scalar(c, `SELECT count(DISTINCT name)::int FROM ${MIGRATIONS_TABLE}`)).toBe(ALL.length);
    } finally {
      await c.end();
    }
    // the same objects as a copy of the template, which was migrated once, alone
    const reference = await freshDatabase();
    try {
      expect(await relations(db.url)).toEqual(await relations(reference.url));
    } finally {
      await reference.drop();
    }
  });
});

// ------------------------------------------------------------------ CLI

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: PACKAGE_DIR, env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function envWithout(...names: string[]): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const n of names) delete env[n];
  return env;
}

/** True when some src/**.ts is newer than its dist/**.js (or that is missing). */
function distIsStale(): boolean {
  const src = path.join(PACKAGE_DIR, 'src');
  const walk = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  return walk(src)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .some((f) => {
      const out = path.join(PACKAGE_DIR, 'dist', path.relative(src, f)).replace(/\.ts$/, '.js');
      return !fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(f).mtimeMs;
    });
}

describe('CLI (node dist/cli.js)', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    if (distIsStale()) {
      const tsc = require.resolve('typescript/bin/tsc');
      const built = await run(process.execPath, [tsc, '-p', 'tsconfig.build.json'], process.env);
      expect(built, built.stdout + built.stderr).toMatchObject({ code: 0 });
    }
    expect(distIsStale()).toBe(false);
    db = await freshDatabase({ migrated: false });
  });
  afterAll(async () => {
    await db?.drop();
  });

  const cli = (args: string[], env: NodeJS.ProcessEnv) => run(process.execPath, ['dist/cli.js', ...args], env);

  it('up applies every migration and exits 0', async () => {
    const r = await cli(['up'], { ...envWithout('DATABASE_URL'), DATABASE_URL: db.url });
    expect(r).toEqual({ code: 0, stdout: `applied: ${ALL.join(', ')}\n`, stderr: '' });
    expect(await appliedMigrations(MIGRATIONS_TABLE, db.url)).toEqual(ALL);
  });

  it('up again reports the schema is up to date', async () => {
    const r = await cli(['up'], { ...envWithout('DATABASE_URL'), DATABASE_URL: db.url });
    expect(r).toEqual({ code: 0, stdout: 'schema is up to date\n', stderr: '' });
  });

  it('status lists the applied migrations; down reverts the newest', async () => {
    const status = await cli(['status'], { ...envWithout('DATABASE_URL'), DATABASE_URL: db.url });
    expect(status).toEqual({ code: 0, stdout: ALL.join('\n') + '\n', stderr: '' });
    const down = await cli(['down'], { ...envWithout('DATABASE_URL'), DATABASE_URL: db.url });
    expect(down).toEqual({ code: 0, stdout: `reverted: ${ALL[ALL.length - 1]}\n`, stderr: '' });
    expect(await appliedMigrations(MIGRATIONS_TABLE, db.url)).toEqual(ALL.slice(0, -1));
  });

  it('exits 2 with usage when DATABASE_URL is not set', async () => {
    const r = await cli(['up'], envWithout('DATABASE_URL'));
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('DATABASE_URL is not set.');
    expect(r.stderr).toContain('usage: mcp-db <up|down|status|monitor|maintain>');
  });

  it('exits 2 on an unknown command', async () => {
    const r = await cli(['sideways'], { ...envWithout('DATABASE_URL'), DATABASE_URL: db.url });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage: mcp-db');
  });

  it('exits 1 with the error message when the database cannot be reached', async () => {
    const url = new URL(db.url);
    url.pathname = '/no_such_database_for_cli_test';
    const r = await cli(['up'], { ...envWithout('DATABASE_URL'), DATABASE_URL: url.toString() });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no_such_database_for_cli_test');
  });
});
