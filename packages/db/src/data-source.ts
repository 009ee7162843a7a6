import 'reflect-metadata';
import { DataSource, type EntitySchema, type MixedList } from 'typeorm';
import { migrations } from './migrations';

export interface DataSourceOptions {
  url: string;
  /** The calling service's own entities; the migrations always come from this package. */
  entities?: MixedList<Function | string | EntitySchema>;
  /** Shows up in pg_stat_activity and in pg spans. */
  applicationName?: string;
  poolSize?: number;
  /** Server-side cap for any one statement, in milliseconds (0 = none). */
  statementTimeoutMs?: number;
}

/** Name of the table where TypeORM records applied migrations. */
export const MIGRATIONS_TABLE = 'schema_migrations';

/**
 * The one way to build a DataSource in this repository: schema changes come
 * only from the reviewed migrations in ./migrations, never from entity sync,
 * and TypeORM never installs extensions (uuid columns default to
 * gen_random_uuid(), which is built in since PostgreSQL 13).
 */
export function createDataSource(options: DataSourceOptions): DataSource {
  return new DataSource({
    type: 'postgres',
    url: options.url,
    entities: options.entities ?? [],
    migrations,
    migrationsTableName: MIGRATIONS_TABLE,
    migrationsTransactionMode: 'each',
    synchronize: false,
    migrationsRun: false,
    installExtensions: false,
    applicationName: options.applicationName ?? 'mcp',
    poolSize: options.poolSize ?? 10,
    extra: {
      statement_timeout: options.statementTimeoutMs ?? 0,
      connectionTimeoutMillis: 5_000,
    },
    logging: false,
  });
}
