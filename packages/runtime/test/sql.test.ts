import { freshDatabase, type TestDatabase } from '@mcp/db/testing';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arrayLiteral } from '../src/sql';

let db: TestDatabase;
let pg: Client;

beforeAll(async () => {
  db = await freshDatabase({ migrated: false });
  pg = new Client({ connectionString: db.url });
  await pg.connect();
});
afterAll(async () => {
  await pg?.end();
  await db?.drop();
});

describe('arrayLiteral', () => {
  it('round-trips every awkward text through PostgreSQL exactly as node-pg’s own array parameter does', async () => {
    const texts = ['plain', '', 'NULL', 'null', ' spaced ', 'a,b', '{braces}', '"quoted"', 'back\\slash', '\\"both\\"', "it's", 'tab\tnew\nline', 'ünïcødé 🚀', '{"json": ["x", 1]}', null];
    const literal = arrayLiteral(texts);
    const { rows } = await pg.query('SELECT $1::text[] AS ours, $2::text[] AS theirs', [literal, texts]);
    expect(rows[0].ours).toEqual(texts);
    expect(rows[0].ours).toEqual(rows[0].theirs);
  });

  it('writes numbers, bigints, dates and nulls for typed arrays', async () => {
    const at = new Date('2026-11-23T07:08:09.123Z');
    const { rows } = await pg.query(
      `SELECT $1::int[] AS ints, $2::bigint[]::text[] AS bigints, $3::timestamptz[] AS times, $4::uuid[]::text[] AS ids, $5::jsonb[] AS docs`,
      [
        arrayLiteral([1, -2, null, 2_147_483_647]),
        arrayLiteral([9_223_372_036_854_775_807n, '42', undefined]),
        arrayLiteral([at, null]),
        arrayLiteral(['0193a9c4-1b2c-7d3e-8f40-000000000001']),
        arrayLiteral(['{"a":"x\\"y","b":[1,{"c":null}]}', null]),
      ],
    );
    expect(rows[0].ints).toEqual([1, -2, null, 2_147_483_647]);
    expect(rows[0].bigints).toEqual(['9223372036854775807', '42', null]);
    expect(rows[0].times.map((t: Date | null) => t?.toISOString() ?? null)).toEqual([at.toISOString(), null]);
    expect(rows[0].ids).toEqual(['0193a9c4-1b2c-7d3e-8f40-000000000001']);
    expect(rows[0].docs).toEqual([{ a: 'x"y', b: [1, { c: null }] }, null]);
  });
});
