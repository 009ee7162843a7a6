/**
 * Scenario figures: each scenario appends its row to results/scenarios.jsonl
 * (reset at the start of every run by the global setup); at the end of a
 * whole-suite run the global setup renders them into RELIABILITY.md, so the
 * figures there are what a run produced.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mb } from './process-stats';

export const RESULTS_DIR = path.resolve(__dirname, '..', 'results');
const RESULTS_FILE = path.join(RESULTS_DIR, 'scenarios.jsonl');
export const REPORT_FILE = path.resolve(__dirname, '..', '..', 'RELIABILITY.md');

export interface ScenarioResult {
  /** One of SCENARIOS' ids (rows are grouped and ordered by it), or another suite's own. */
  scenario: string;
  /** The row's label within its scenario, e.g. the write path. */
  label: string;
  /** Items (events, reports, heartbeats, rows) the scenario tried to write or process. */
  operations: number;
  acknowledged: number;
  /** Acknowledged and found stored. */
  stored: number;
  lost: number;
  duplicated: number;
  /** Peak resident memory per service process, bytes. */
  peakRss: Record<string, number>;
  /** What else the scenario showed (health transitions, exit codes, throughput, fds, …). */
  notes: string[];
}

/** Clears the previous run's outputs: what is reported is this run's alone. */
export function resetResults(): void {
  fs.rmSync(RESULTS_DIR, { recursive: true, force: true });
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(RESULTS_FILE, '');
}

export function recordResult(result: ScenarioResult): void {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.appendFileSync(RESULTS_FILE, `${JSON.stringify(result)}\n`);
}

export function readResults(): ScenarioResult[] {
  if (!fs.existsSync(RESULTS_FILE)) return [];
  return fs
    .readFileSync(RESULTS_FILE, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as ScenarioResult);
}

/** The scenarios of issue #10, in the report's order, with what each one asserts. */
export const SCENARIOS: Array<{ id: string; title: string; asserts: string }> = [
  {
    id: 'db-restart',
    title: 'Database restart during sustained ingest',
    asserts:
      'PostgreSQL is stopped twice (`pg_ctl stop -m fast`, then `-m immediate`, a crash) and started again on the same port while every write path is fed at a fixed rate through the client library\'s recorders. Every acknowledged key is stored exactly once; each service\'s health went SERVING → NOT_SERVING → SERVING for each restart; no item was rejected or abandoned.',
  },
  {
    id: 'db-unreachable',
    title: 'Database unreachable at start',
    asserts:
      'Each service is started while the cluster is stopped: it reports NOT_SERVING, answers a write with UNAVAILABLE, stays up and NOT_SERVING for a few seconds more, and — same process, no restart — turns SERVING once the cluster starts, then stores a write. Operations: the refused write and the stored one.',
  },
  {
    id: 'sigterm',
    title: 'SIGTERM under load',
    asserts:
      'Each ingest service gets SIGTERM while concurrent writers keep calls in flight: calls answered after the signal include successes (the drain), every other call is refused with UNAVAILABLE (no other code), every acknowledged key is stored exactly once, nothing refused is stored, the process exits 0, and a call after the exit is refused with UNAVAILABLE. Operations: items in every call sent.',
  },
  {
    id: 'sigkill-batch',
    title: 'SIGKILL mid-batch',
    asserts:
      'Each ingest service is killed with SIGKILL while concurrent batches of each of its batch methods (RecordEvents, StreamEvents; ReportStatusBatch, HeartbeatBatch; RecordAuditEvents, RecordSecurityEvents) are being written: every batch sent — acknowledged or not — is either wholly stored or wholly absent, and every acknowledged batch is stored. Operations: items in every batch sent; acknowledged: items in acknowledged batches.',
  },
  {
    id: 'retention-kill',
    title: 'Retention killed mid-run, then rerun',
    asserts:
      'A retention run over expired rows (some under legal holds) is killed with SIGKILL half way; a new process reruns it through the cron CLI, then runs once more (a run plans before it acts, so what the rerun archived past the archive\'s retention expires in the next). Rows that left the live table and rows expired from the archive = what the runs counted, archive contents reconcile, the killed run is marked failed, and every held row still exists exactly once with identical contents. In these rows operations are the expired rows in the live table, acknowledged the held rows among them, stored the held rows found unchanged, lost the held rows missing, duplicated the held rows found twice.',
  },
  {
    id: 'stream-resume',
    title: 'Live tail and status watch across server restarts',
    asserts:
      'A resumable tail (connection-log) and watch (status-sync) run while writers keep writing and the service is restarted twice (SIGTERM, then SIGKILL): the client resumes from its cursor and sees every acknowledged write exactly once. Here stored counts the acknowledged writes the reader saw, lost those it missed, duplicated those it saw twice (the database is reconciled too, in the notes).',
  },
  {
    id: 'sustained-load',
    title: 'Sustained load',
    asserts:
      'Every write path at a fixed rate, with a tail and a watch reading, for a fixed period: throughput steady (every window at least half the median window, and keeping up with the offered rate), each service\'s RSS bounded (peak reported; the last third no more than 1.5× the middle third + 64 MB), no descriptor growth (descriptors other than database connections at most 8 above their level under load before the measured period), database connections within each pool\'s size after the load, and every acknowledged key stored exactly once.',
  },
  {
    id: 'hostile-input',
    title: 'Hostile input',
    asserts:
      'Random and truncated protobuf bytes on every method, huge and deeply nested JSON, invalid UTF-8, NUL bytes, boundary numbers and timestamps, SQL and shell metacharacters in every string field, thousands of streams opened and abandoned, with ordinary calls timed from another client process before, while and right after they are open (see `reliability/test/hostile-input.test.ts`).',
  },
];

function scenarioTitle(id: string): string {
  return SCENARIOS.find((s) => s.id === id)?.title ?? id;
}

function rss(peak: Record<string, number>): string {
  const entries = Object.entries(peak);
  return entries.length === 0 ? '–' : entries.map(([name, bytes]) => `${name} ${mb(bytes)} MB`).join('<br>');
}

export interface ReportRun {
  command: string;
  startedAt: Date;
  durationMs: number;
}

export function renderReport(results: ScenarioResult[], run: ReportRun): string {
  const order = (id: string) => {
    const i = SCENARIOS.findIndex((s) => s.id === id);
    return i === -1 ? SCENARIOS.length : i;
  };
  const rows = results.map((r, i) => ({ r, i })).sort((a, b) => order(a.r.scenario) - order(b.r.scenario) || a.i - b.i).map((x) => x.r);
  const lines = [
    '# Reliability: fault and load suite',
    '',
    '<!-- Generated by reliability/src/results.ts at the end of a whole-suite run; do not edit by hand. -->',
    '',
    'The suite in `reliability/` drives the built services (`services/*/dist/main.js`, retention\'s `dist/cron.js`) as',
    'child processes over gRPC on 127.0.0.1, against a PostgreSQL cluster of its own (initdb in a temp directory,',
    'started and stopped with `pg_ctl` on a fixed port), through `@mcp/client` and the generated stubs. Every write',
    'carries a client-assigned key; after each scenario the acknowledged keys are compared with the stored rows',
    '(`count(*)` grouped by key): **lost** = acknowledged but not stored, **duplicated** = stored more than once.',
    '',
    `Produced by \`${run.command}\` on ${run.startedAt.toISOString()} — ${os.cpus().length} cores, Node ${process.version};`,
    `the whole suite took ${Math.round(run.durationMs / 1000)} s.`,
    '',
    '| scenario | operations | acknowledged | stored | lost | duplicated | peak RSS |',
    '|---|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${scenarioTitle(r.scenario)}: ${r.label} | ${r.operations} | ${r.acknowledged} | ${r.stored} | ${r.lost} | ${r.duplicated} | ${rss(r.peakRss)} |`,
    ),
    '',
    '## What each scenario asserts, and what the run showed',
    '',
  ];
  const ids = [...new Set(rows.map((r) => r.scenario))];
  for (const id of ids) {
    const known = SCENARIOS.find((s) => s.id === id);
    lines.push(`### ${scenarioTitle(id)}`, '');
    if (known) lines.push(known.asserts, '');
    for (const r of rows.filter((x) => x.scenario === id)) {
      for (const note of r.notes) lines.push(`- ${r.label}: ${note}`);
    }
    lines.push('');
  }
  lines.push(
    '## Running it',
    '',
    '```sh',
    'npm run reliability                          # build, then the default suite (sustained load for 3 minutes)',
    'RELIABILITY_DURATION_S=600 npm run reliability   # sustained load for 10 minutes',
    'RELIABILITY_SOAK=1 npm run reliability       # soak: sustained load for 30 minutes',
    '```',
    '',
    'A run of selected files (`npx vitest run test/sigterm.test.ts`) writes its rows to `reliability/results/` only.',
    '',
  );
  return lines.join('\n');
}
