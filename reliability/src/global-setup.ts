/**
 * vitest globalSetup: one private PostgreSQL cluster (with a migrated
 * template database) for the whole run, which each scenario may stop and
 * start; and, after a whole-suite run, RELIABILITY.md from the rows the
 * scenarios recorded.
 */
import * as fs from 'node:fs';
import { PostgresCluster } from './postgres-cluster';
import { readResults, renderReport, REPORT_FILE, resetResults } from './results';

/** True when vitest was given no file or test-name filter: the run is the whole suite. */
function wholeSuite(argv: string[]): boolean {
  const args = argv.slice(2).filter((a) => a !== 'run');
  return !args.some((a) => !a.startsWith('-') || a === '-t' || a.startsWith('--testNamePattern'));
}

function command(): string {
  const flags = Object.entries(process.env)
    .filter(([k]) => k.startsWith('RELIABILITY_'))
    .map(([k, v]) => `${k}=${v} `)
    .join('');
  return process.env.npm_lifecycle_event === 'reliability' ? `${flags}npm run reliability` : `cd reliability && ${flags}npx vitest run`;
}

export default async function setup(): Promise<() => Promise<void>> {
  const startedAt = new Date();
  resetResults();
  const cluster = await PostgresCluster.create();
  // Test workers start after this and inherit the environment.
  cluster.exportToEnv();
  return async () => {
    await cluster.destroy();
    if (wholeSuite(process.argv)) {
      fs.writeFileSync(REPORT_FILE, renderReport(readResults(), { command: command(), startedAt, durationMs: Date.now() - startedAt.getTime() }));
    }
  };
}
