import type { DataSource } from 'typeorm';

export interface DriftProblem {
  table: string;
  column?: string;
  problem: string;
}

/** TypeORM type names -> PostgreSQL udt_name, for the types this schema uses. */
const UDT_BY_TYPEORM_TYPE: Record<string, string> = {
  uuid: 'uuid',
  text: 'text',
  varchar: 'varchar',
  'character varying': 'varchar',
  int: 'int4',
  integer: 'int4',
  int4: 'int4',
  smallint: 'int2',
  int2: 'int2',
  bigint: 'int8',
  int8: 'int8',
  boolean: 'bool',
  bool: 'bool',
  timestamptz: 'timestamptz',
  'timestamp with time zone': 'timestamptz',
  timestamp: 'timestamp',
  date: 'date',
  jsonb: 'jsonb',
  json: 'json',
  inet: 'inet',
  numeric: 'numeric',
  decimal: 'numeric',
  bytea: 'bytea',
  'double precision': 'float8',
  real: 'float4',
};

interface DbColumn {
  column_name: string;
  udt_name: string;
  is_nullable: 'YES' | 'NO';
}

/**
 * Compares a service's entities with the migrated schema: every entity column
 * must exist with the same type and nullability, every column of an entity's
 * table must be mapped, and primary keys must agree. Returns the differences
 * (empty = no drift). Each service's tests call this on its own DataSource.
 */
export async function checkEntityDrift(ds: DataSource): Promise<DriftProblem[]> {
  const problems: DriftProblem[] = [];
  for (const meta of ds.entityMetadatas) {
    const [schema, table] = meta.tablePath.includes('.') ? meta.tablePath.split('.') : ['public', meta.tablePath];
    const dbColumns: DbColumn[] = await ds.query(
      `SELECT column_name, udt_name, is_nullable FROM information_schema.columns
        WHERE table_schema = $1 AND table_name = $2`,
      [schema, table],
    );
    if (dbColumns.length === 0) {
      problems.push({ table: meta.tablePath, problem: 'table does not exist' });
      continue;
    }
    const byName = new Map(dbColumns.map((c) => [c.column_name, c]));
    for (const col of meta.columns) {
      const db = byName.get(col.databaseName);
      if (!db) {
        problems.push({ table: meta.tablePath, column: col.databaseName, problem: 'mapped by the entity, missing in the database' });
        continue;
      }
      if (typeof col.type !== 'string') {
        problems.push({ table: meta.tablePath, column: col.databaseName, problem: 'entity column has no explicit type' });
        continue;
      }
      const expected = UDT_BY_TYPEORM_TYPE[col.type] ?? col.type;
      if (expected !== db.udt_name) {
        problems.push({ table: meta.tablePath, column: col.databaseName, problem: `type: entity ${col.type}, database ${db.udt_name}` });
      }
      const dbNullable = db.is_nullable === 'YES';
      if (col.isNullable !== dbNullable) {
        problems.push({
          table: meta.tablePath,
          column: col.databaseName,
          problem: `nullability: entity ${col.isNullable ? 'NULL' : 'NOT NULL'}, database ${dbNullable ? 'NULL' : 'NOT NULL'}`,
        });
      }
    }
    const mapped = new Set(meta.columns.map((c) => c.databaseName));
    for (const db of dbColumns) {
      if (!mapped.has(db.column_name)) {
        problems.push({ table: meta.tablePath, column: db.column_name, problem: 'in the database, not mapped by the entity' });
      }
    }
    const dbPk: { column_name: string }[] = await ds.query(
      `SELECT a.attname AS column_name FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = to_regclass($1) AND i.indisprimary`,
      [`${schema}.${table}`],
    );
    const entityPk = meta.primaryColumns.map((c) => c.databaseName).sort();
    const databasePk = dbPk.map((r) => r.column_name).sort();
    if (entityPk.join(',') !== databasePk.join(',')) {
      problems.push({ table: meta.tablePath, problem: `primary key: entity (${entityPk}), database (${databasePk})` });
    }
  }
  return problems;
}
