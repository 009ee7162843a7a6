import { Column, Entity, PrimaryColumn } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkEntityDrift, createDataSource, type DriftProblem } from '../src';
import { freshDatabase, type TestDatabase } from '../src/testing';

// Legacy decorators (experimentalDecorators); vitest emits no decorator
// metadata, so every column names its type explicitly.

@Entity({ name: 'system_logs' })
class SystemLog {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ type: 'text' })
  operation!: string;

  @Column({ type: 'text', nullable: true })
  details!: string | null;

  @Column({ type: 'jsonb' })
  metadata!: Record<string, unknown>;

  @Column({ type: 'timestamptz' })
  timestamp!: Date;
}

@Entity({ name: 'partitioned_tables' })
class PartitionedTable {
  @PrimaryColumn({ name: 'parent_table', type: 'text' })
  parentTable!: string;

  @Column({ name: 'partition_column', type: 'text' })
  partitionColumn!: string;

  @Column({ type: 'text' })
  width!: 'day' | 'month';

  @Column({ type: 'integer' })
  premake!: number;
}

/** system_logs, mapped wrongly on purpose. */
@Entity({ name: 'system_logs' })
class DriftedSystemLog {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ type: 'varchar' }) // database: text
  operation!: string;

  @Column({ type: 'text' }) // database: NULL allowed
  details!: string;

  @Column({ type: 'jsonb' })
  metadata!: Record<string, unknown>;

  @Column({ type: 'timestamptz' })
  timestamp!: Date;

  @Column({ type: 'text', nullable: true }) // no such column
  severity!: string | null;
}

/** system_logs without one of its columns, and with the wrong primary key. */
@Entity({ name: 'system_logs' })
class PartialSystemLog {
  @PrimaryColumn({ type: 'text' })
  operation!: string;

  @Column({ type: 'uuid' })
  id!: string;

  @Column({ type: 'text', nullable: true })
  details!: string | null;

  @Column({ type: 'timestamptz' })
  timestamp!: Date;
}

@Entity({ name: 'no_such_table' })
class Ghost {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;
}

let db: TestDatabase;

beforeAll(async () => {
  db = await freshDatabase();
});

afterAll(async () => {
  await db?.drop();
});

async function drift(entities: Function[]): Promise<DriftProblem[]> {
  const ds = createDataSource({ url: db.url, entities, poolSize: 1 });
  await ds.initialize();
  try {
    return await checkEntityDrift(ds);
  } finally {
    await ds.destroy();
  }
}

const byColumn = (a: DriftProblem, b: DriftProblem) => `${a.table}.${a.column ?? ''}.${a.problem}`.localeCompare(`${b.table}.${b.column ?? ''}.${b.problem}`);

describe('checkEntityDrift', () => {
  it('returns nothing for entities that match the schema', async () => {
    expect(await drift([SystemLog, PartitionedTable])).toEqual([]);
  });

  it('reports exactly the wrong type, the wrong nullability and the column missing in the database', async () => {
    expect((await drift([DriftedSystemLog])).sort(byColumn)).toEqual(
      [
        { table: 'system_logs', column: 'operation', problem: 'type: entity varchar, database text' },
        { table: 'system_logs', column: 'details', problem: 'nullability: entity NOT NULL, database NULL' },
        { table: 'system_logs', column: 'severity', problem: 'mapped by the entity, missing in the database' },
      ].sort(byColumn),
    );
  });

  it('reports a database column the entity does not map, and a primary key mismatch', async () => {
    expect((await drift([PartialSystemLog])).sort(byColumn)).toEqual(
      [
        { table: 'system_logs', column: 'metadata', problem: 'in the database, not mapped by the entity' },
        { table: 'system_logs', problem: 'primary key: entity (operation), database (id)' },
      ].sort(byColumn),
    );
  });

  it('reports a table that does not exist, and checks every entity it is given', async () => {
    expect(await drift([Ghost, SystemLog])).toEqual([{ table: 'no_such_table', problem: 'table does not exist' }]);
  });
});
