import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDatabase } from '../src/testing';
import { connect, rows, scalar } from './helpers';

/**
 * Seed 000's two log tables, read from the seed's own SQL and compared with the
 * migrated database: columns (order, type, NOT NULL, DEFAULT), CHECK lists,
 * foreign keys, primary key, COMMENTs and indexes. Every difference allowed is
 * a named deviation that docs/schema.md explains.
 */

const SEED_FILE_NAME = '000_e042bf13f4b4ac26.txt';
/** The committed copy (fixtures/seeds/README.md); a fresh clone has no ../shared. */
const SEED_COPY = path.join(__dirname, 'fixtures', 'seeds', SEED_FILE_NAME);
/** sha256 of ../shared/seeds/000_e042bf13f4b4ac26.txt, which a fresh clone does not have. */
const SEED_SHA256 = 'e81f1bf0d49bdc24bf13380954933e0d413ac0b3cd58a8cae8217108b0ffd686';
const SCHEMA_DOC = path.resolve(__dirname, '..', '..', '..', 'docs', 'schema.md');

const LOG_TABLES = ['agent_mcp_connection_logs', 'mcp_server_status_logs'] as const;
type LogTable = (typeof LOG_TABLES)[number];

// ------------------------------------------------------------ documented deviations

/** Text docs/schema.md contains where it explains the deviation. */
interface Deviation {
  docs: string;
}

const DEVIATION = {
  primaryKeyIncludesPartitionKey: { docs: '1. **Primary keys of partitioned tables include the partition key**' },
  recentIndexWithoutNow: { docs: '2. **`idx_mcp_server_status_logs_recent`**' },
  archiveYearInUtc: { docs: '3. **Archive year indexes**' },
  nonNegativeChecks: { docs: '11. **Added CHECKs**: non-negative latencies, durations, byte counts and uptimes' },
  ingestXidColumn: { docs: '`ingest_xid BIGINT` on both log tables' },
  authUsersIsAView: { docs: 'Foreign keys (`created_by`) point at `users(id)`' },
  accountToolInstancesIsAView: {
    docs: '`mcp_server_status_logs.server_id` and `agent_mcp_connections.mcp_server_instance_id` reference `mcp_servers(id)`',
  },
} satisfies Record<string, Deviation>;

/** The partition key, added to each seed primary key. */
const PARTITION_KEY: Record<LogTable, { column: string; why: Deviation }> = {
  agent_mcp_connection_logs: { column: 'timestamp', why: DEVIATION.primaryKeyIncludesPartitionKey },
  mcp_server_status_logs: { column: 'timestamp', why: DEVIATION.primaryKeyIncludesPartitionKey },
};

/** Columns the services added; the seed has none of them. */
const ADDED_COLUMNS: Record<LogTable, { columns: string[]; why: Deviation }> = {
  agent_mcp_connection_logs: { columns: ['ingest_xid'], why: DEVIATION.ingestXidColumn },
  mcp_server_status_logs: { columns: ['ingest_xid'], why: DEVIATION.ingestXidColumn },
};

/** CHECKs beyond the seed's IN-lists, as pg_get_constraintdef() prints them. */
const ADDED_CHECKS: Record<LogTable, { checks: string[]; why: Deviation }> = {
  agent_mcp_connection_logs: {
    checks: ['CHECK ((bytes_transferred >= 0))', 'CHECK ((latency_ms >= 0))'],
    why: DEVIATION.nonNegativeChecks,
  },
  mcp_server_status_logs: {
    checks: ['CHECK ((response_time_ms >= 0))', 'CHECK ((uptime_seconds >= 0))'],
    why: DEVIATION.nonNegativeChecks,
  },
};

/** Seed 000 references Supabase/seed-1 names that are views here; foreign keys point at the tables under them. */
const REFERENCED_TABLE: Record<string, { table: string; why: Deviation }> = {
  'auth.users': { table: 'users', why: DEVIATION.authUsersIsAView },
  account_tool_instances: { table: 'mcp_servers', why: DEVIATION.accountToolInstancesIsAView },
};

/** Seed indexes PostgreSQL refuses as written: what each became. Columns are in normalised form (see `normalise`). */
const CHANGED_INDEXES: Record<string, { columns?: string[]; predicate?: null; descending?: string[]; why: Deviation }> = {
  idx_mcp_server_status_logs_recent: { predicate: null, descending: ['timestamp'], why: DEVIATION.recentIndexWithoutNow },
  idx_agent_mcp_connection_logs_archive_timestamp_year: {
    columns: ["extract(year from (timestamp at time zone 'utc'))", 'timestamp'],
    why: DEVIATION.archiveYearInUtc,
  },
  idx_mcp_server_status_logs_archive_timestamp_year: {
    columns: ["extract(year from (timestamp at time zone 'utc'))", 'timestamp'],
    why: DEVIATION.archiveYearInUtc,
  },
};

// ------------------------------------------------------------ the seed's SQL

interface SeedColumn {
  name: string;
  type: string;
  notNull: boolean;
  primaryKey: boolean;
  default: string | null;
  references: { table: string; column: string; onDelete: string } | null;
  checkIn: string[] | null;
}

interface SeedTable {
  columns: SeedColumn[];
  comment: string | null;
  columnComments: Map<string, string>;
}

interface SeedIndex {
  name: string;
  table: string;
  unique: boolean;
  columns: string[];
  predicate: string | null;
}

/** The SQL of the document's ```sql blocks, without `--` comments (no string literal in this seed contains `--`). */
function seedSql(markdown: string): string {
  return [...markdown.matchAll(/```sql\n([\s\S]*?)```/g)]
    .map((m) => m[1])
    .join('\n')
    .replace(/--[^\n]*/g, '');
}

/** The text between the parenthesis at `open` and the one that closes it, skipping string literals. */
function parenthesised(s: string, open: number): { inner: string; close: number } {
  if (s[open] !== '(') throw new Error(`expected "(" at ${open}: ${s.slice(open, open + 40)}`);
  let depth = 0;
  let quoted = false;
  for (let i = open; i < s.length; i++) {
    const ch = s[i];
    if (ch === "'") quoted = !quoted;
    else if (!quoted && ch === '(') depth++;
    else if (!quoted && ch === ')' && --depth === 0) return { inner: s.slice(open + 1, i), close: i };
  }
  throw new Error(`unbalanced parenthesis at ${open}`);
}

/** Splits on the commas outside parentheses and string literals. */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === "'") quoted = !quoted;
    else if (quoted) continue;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

function stringLiterals(s: string): string[] {
  return [...s.matchAll(/'((?:[^']|'')*)'/g)].map((m) => m[1].replace(/''/g, "'"));
}

function parseColumn(definition: string): SeedColumn {
  const def = definition.replace(/\s+/g, ' ');
  if (/^(PRIMARY|UNIQUE|CHECK|FOREIGN|CONSTRAINT|EXCLUDE)\b/i.test(def)) {
    throw new Error(`table constraints are not parsed here: ${def}`);
  }
  const m = /^(\w+) (\w+)(.*)$/.exec(def);
  if (!m) throw new Error(`not a column definition: ${def}`);
  const [, name, type, rest] = m;
  const references = /\bREFERENCES ([\w.]+)\s*\((\w+)\)(?: ON DELETE (CASCADE|SET NULL|SET DEFAULT|RESTRICT|NO ACTION))?/i.exec(rest);
  const defaultClause = /\bDEFAULT (.+?)(?= NOT NULL| NULL| REFERENCES| CHECK| PRIMARY KEY| UNIQUE|$)/i.exec(rest);
  const check = /\bCHECK ?\(/i.exec(rest);
  let checkIn: string[] | null = null;
  if (check) {
    const body = parenthesised(rest, check.index + check[0].length - 1).inner.trim();
    const inList = /^(\w+) IN ?\(([\s\S]*)\)$/i.exec(body);
    if (!inList || inList[1] !== name) throw new Error(`only "${name} IN (…)" CHECKs are parsed: ${body}`);
    checkIn = stringLiterals(inList[2]);
  }
  const primaryKey = /\bPRIMARY KEY\b/i.test(rest);
  return {
    name,
    type,
    notNull: primaryKey || /\bNOT NULL\b/i.test(rest),
    primaryKey,
    default: defaultClause ? defaultClause[1].trim() : null,
    references: references ? { table: references[1], column: references[2], onDelete: (references[3] ?? 'NO ACTION').toUpperCase() } : null,
    checkIn,
  };
}

function parseSeed(sql: string): { tables: Map<string, SeedTable>; indexes: SeedIndex[]; commentCount: number } {
  const tables = new Map<string, SeedTable>();
  for (const m of sql.matchAll(/CREATE TABLE (\w+) ?\(/g)) {
    const { inner } = parenthesised(sql, m.index + m[0].length - 1);
    if (/^\s*LIKE\b/i.test(inner)) continue; // the archives: copies of the live tables
    tables.set(m[1], { columns: splitTopLevel(inner).map(parseColumn), comment: null, columnComments: new Map() });
  }
  let commentCount = 0;
  for (const m of sql.matchAll(/COMMENT ON (TABLE|COLUMN) (\w+)(?:\.(\w+))? IS '((?:[^']|'')*)';/g)) {
    const [, kind, table, column, text] = m;
    const target = tables.get(table);
    if (!target) throw new Error(`comment on a table the seed does not create: ${m[0]}`);
    const comment = text.replace(/''/g, "'");
    if (kind === 'TABLE') target.comment = comment;
    else target.columnComments.set(column, comment);
    commentCount++;
  }
  const indexes: SeedIndex[] = [];
  for (const m of sql.matchAll(/CREATE (UNIQUE )?INDEX (\w+)\s+ON (\w+) ?\(/g)) {
    const { inner, close } = parenthesised(sql, m.index + m[0].length - 1);
    const tail = sql.slice(close + 1, sql.indexOf(';', close));
    const where = /^\s*WHERE ([\s\S]+)$/i.exec(tail);
    indexes.push({ name: m[2], table: m[3], unique: Boolean(m[1]), columns: splitTopLevel(inner), predicate: where ? where[1] : null });
  }
  return { tables, indexes, commentCount };
}

/** Compares SQL text the way pg_get_*def() prints it against the seed's: no casts, quotes, case or spacing. */
function normalise(sqlText: string): string {
  return sqlText
    .replace(/::\w+/g, '')
    .replace(/"/g, '')
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase();
}

const ON_DELETE: Record<string, string> = { a: 'NO ACTION', r: 'RESTRICT', c: 'CASCADE', n: 'SET NULL', d: 'SET DEFAULT' };

// ------------------------------------------------------------ tests

const seed = parseSeed(seedSql(fs.readFileSync(SEED_COPY, 'utf8')));

function seedTable(name: LogTable): SeedTable {
  const table = seed.tables.get(name);
  if (!table) throw new Error(`seed 000 does not create ${name}`);
  return table;
}

let db: TestDatabase;
let c: Client;

beforeAll(async () => {
  db = await freshDatabase();
  c = await connect(db.url);
});

afterAll(async () => {
  await c?.end();
  await db?.drop();
});

describe('seed 000 conformance of the two log tables', () => {
  it('the committed copy is byte for byte the seed (its sha256, taken from ../shared/seeds)', () => {
    expect(createHash('sha256').update(fs.readFileSync(SEED_COPY)).digest('hex')).toBe(SEED_SHA256);
  });

  it('reads the seed: two tables of 16 and 14 columns, 23 comments, 16 indexes', () => {
    expect([...seed.tables.keys()]).toEqual([...LOG_TABLES]);
    expect(LOG_TABLES.map((t) => seedTable(t).columns.length)).toEqual([16, 14]);
    expect(seed.commentCount).toBe(23);
    expect(seed.indexes).toHaveLength(16);
  });

  it('every deviation allowed here is explained in docs/schema.md', () => {
    const doc = fs.readFileSync(SCHEMA_DOC, 'utf8');
    const missing = Object.entries(DEVIATION).filter(([, d]) => !doc.includes(d.docs));
    expect(missing.map(([name]) => name)).toEqual([]);
  });

  for (const table of LOG_TABLES) {
    describe(table, () => {
      it("has the seed's columns in its order, with its types, NOT NULL and defaults, and only the documented additions", async () => {
        const seedColumns = seedTable(table).columns;
        const canonicalTypes = await rows<{ type: string | null }>(
          c,
          `SELECT format_type(to_regtype(t), NULL) AS type FROM unnest($1::text[]) WITH ORDINALITY u(t, n) ORDER BY n`,
          [seedColumns.map((col) => col.type)],
        );
        const expected = seedColumns.map((col, i) => ({
          name: col.name,
          type: canonicalTypes[i].type,
          notNull: col.notNull,
          default: col.default === null ? null : normalise(col.default),
        }));
        const actual = await rows<{ name: string; type: string; notNull: boolean; default: string | null }>(
          c,
          `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS "notNull",
                  pg_get_expr(d.adbin, d.adrelid) AS default
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum`,
          [table],
        );
        const added = ADDED_COLUMNS[table].columns;
        const seedPart = actual.filter((col) => !added.includes(col.name));
        expect(seedPart.map((col) => ({ ...col, default: col.default === null ? null : normalise(col.default) }))).toEqual(expected);
        expect(actual.map((col) => col.name).filter((name) => !seedColumns.some((col) => col.name === name))).toEqual(added);
      });

      it("has each of the seed's CHECK lists exactly, and no other CHECK than the documented ones", async () => {
        const checks = await rows<{ def: string }>(
          c,
          `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c' ORDER BY 1`,
          [table],
        );
        const inLists = new Map<string, string[]>();
        const others: string[] = [];
        for (const { def } of checks) {
          const m = /^CHECK \(\((\w+) = ANY \(ARRAY\[(.*)\]\)\)\)$/.exec(def);
          if (m) inLists.set(m[1], stringLiterals(m[2]));
          else others.push(def);
        }
        const seedLists = seedTable(table).columns.filter((col) => col.checkIn).map((col) => [col.name, col.checkIn]);
        expect(seedLists.length).toBeGreaterThan(0);
        expect([...inLists.entries()]).toEqual(seedLists);
        expect(others).toEqual(ADDED_CHECKS[table].checks);
      });

      it("has the seed's foreign keys and ON DELETE actions, on the tables under the seed's views", async () => {
        const expected = seedTable(table)
          .columns.filter((col) => col.references)
          .map((col) => {
            const ref = col.references!;
            return { column: col.name, table: REFERENCED_TABLE[ref.table]?.table ?? ref.table, references: ref.column, onDelete: ref.onDelete };
          });
        const actual = await rows<{ column: string; table: string; references: string; confdeltype: string }>(
          c,
          `SELECT a.attname AS column, k.confrelid::regclass::text AS table, fa.attname AS references, k.confdeltype
             FROM pg_constraint k
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
             JOIN pg_attribute fa ON fa.attrelid = k.confrelid AND fa.attnum = k.confkey[1]
            WHERE k.conrelid = $1::regclass AND k.contype = 'f' AND cardinality(k.conkey) = 1
            ORDER BY a.attnum`,
          [table],
        );
        expect(actual.map(({ confdeltype, ...fk }) => ({ ...fk, onDelete: ON_DELETE[confdeltype] }))).toEqual(expected);
        expect(await scalar<number>(c, `SELECT count(*)::int FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'`, [table])).toBe(
          expected.length,
        );
      });

      it("has the seed's primary key plus the partition key", async () => {
        const seedKey = seedTable(table).columns.filter((col) => col.primaryKey).map((col) => col.name);
        const key = await scalar<string[]>(
          c,
          `SELECT array_agg(a.attname::text ORDER BY k.n)
             FROM pg_constraint p, unnest(p.conkey) WITH ORDINALITY k(attnum, n)
             JOIN pg_attribute a ON a.attnum = k.attnum
            WHERE p.conrelid = $1::regclass AND p.contype = 'p' AND a.attrelid = p.conrelid`,
          [table],
        );
        expect(seedKey).toEqual(['id']);
        expect(key).toEqual([...seedKey, PARTITION_KEY[table].column]);
      });

      it("has the seed's table and column comments, and none the seed does not give", async () => {
        const seeded = seedTable(table);
        const comments = await rows<{ name: string; comment: string | null }>(
          c,
          `SELECT a.attname AS name, col_description(a.attrelid, a.attnum) AS comment
             FROM pg_attribute a
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum`,
          [table],
        );
        expect(await scalar(c, `SELECT obj_description($1::regclass, 'pg_class')`, [table])).toBe(seeded.comment);
        expect(comments.filter((col) => !ADDED_COLUMNS[table].columns.includes(col.name))).toEqual(
          seeded.columns.map((col) => ({ name: col.name, comment: seeded.columnComments.get(col.name) ?? null })),
        );
      });
    });
  }

  it("has the seed's indexes on both tables and their archives: table, key columns, order, uniqueness, predicate", async () => {
    const actual = await rows<{ name: string; table: string; unique: boolean; columns: string[]; descending: boolean[]; predicate: string | null }>(
      c,
      `SELECT x.relname AS name, i.indrelid::regclass::text AS table, i.indisunique AS unique,
              array_agg(pg_get_indexdef(i.indexrelid, k, true) ORDER BY k) AS columns,
              array_agg((i.indoption[k - 1] & 1) = 1 ORDER BY k) AS descending,
              pg_get_expr(i.indpred, i.indrelid, true) AS predicate
         FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid, generate_series(1, i.indnkeyatts) k
        WHERE x.relname = ANY($1) AND x.relnamespace = 'public'::regnamespace
        GROUP BY x.relname, i.indrelid, i.indisunique, i.indpred`,
      [seed.indexes.map((ix) => ix.name)],
    );
    const comparable = (ix: { name: string; table: string; unique: boolean; columns: string[]; predicate: string | null }, descending: string[]) => ({
      name: ix.name,
      table: ix.table,
      unique: ix.unique,
      columns: ix.columns.map((col) => {
        const column = normalise(col);
        return descending.includes(column) ? `${column} desc` : column;
      }),
      predicate: ix.predicate === null ? null : normalise(ix.predicate),
    });
    const expected = seed.indexes.map((ix) => {
      const change = CHANGED_INDEXES[ix.name];
      return comparable(
        {
          ...ix,
          columns: change?.columns ?? ix.columns,
          predicate: change?.predicate === null ? null : ix.predicate,
        },
        change?.descending ?? [],
      );
    });
    const found = actual.map((ix) => comparable(ix, ix.columns.filter((_, k) => ix.descending[k]).map(normalise)));
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    expect(found.sort(byName)).toEqual(expected.sort(byName));
  });
});
