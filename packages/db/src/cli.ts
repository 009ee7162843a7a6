#!/usr/bin/env node
import { MIGRATIONS_TABLE } from './data-source';
import { Client } from 'pg';
import { appliedMigrations, migrateDown, migrateUp } from './migrate';
import { monitoringReport, runMaintenance } from './upkeep';

const usage = 'usage: mcp-db <up|down|status|monitor|maintain>   (database from DATABASE_URL)';

async function withClient<T>(url: string, work: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url, application_name: 'mcp-db' });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function main(): Promise<number> {
  const command = process.argv[2];
  const url = process.env.DATABASE_URL;
  if (!url) {
    console.error('DATABASE_URL is not set.\n' + usage);
    return 2;
  }
  switch (command) {
    case 'up': {
      const { applied } = await migrateUp(url);
      console.log(applied.length === 0 ? 'schema is up to date' : `applied: ${applied.join(', ')}`);
      return 0;
    }
    case 'down': {
      const reverted = await migrateDown(url);
      console.log(reverted ? `reverted: ${reverted}` : 'nothing to revert');
      return 0;
    }
    case 'status': {
      const applied = await appliedMigrations(MIGRATIONS_TABLE, url);
      console.log(applied.length === 0 ? 'no migrations applied' : applied.join('\n'));
      return 0;
    }
    case 'monitor': {
      // One JSON document: seed 004's monitoring queries (index hit ratio target > 0.95).
      const report = await withClient(url, monitoringReport);
      console.log(JSON.stringify(report, null, 2));
      return 0;
    }
    case 'maintain': {
      for (const step of await withClient(url, runMaintenance)) console.log(`${step.statement}  (${step.ms} ms)`);
      return 0;
    }
    default:
      console.error(usage);
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
