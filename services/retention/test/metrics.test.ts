import { metrics } from '@opentelemetry/api';
import { captureMetrics } from '@mcp/runtime/dist/testing';
import { retention } from '@mcp/proto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { count, createFixture, insertStatusLogs, startHarness, utcDay, type Harness } from './harness';

// Before the service exists: platformMetrics creates its instruments on first use.
const reader = captureMetrics();

const { HoldSubjectType, RunStatus } = retention;
const LIVE = 'mcp_server_status_logs';
const ARCHIVE = 'mcp_server_status_logs_archive';
const HOUR_MS = 3_600_000;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ batchSize: 1000 });
});
afterAll(async () => {
  await h?.close();
  metrics.disable();
});

const at = (days: number, hours: number): Date => new Date(utcDay(days).getTime() + hours * HOUR_MS);

it('counts what real runs deleted, archived and dropped with partitions, and nothing for a dry run', async () => {
  const free = await createFixture(h.pg, 'metrics-free');
  const held = await createFixture(h.pg, 'metrics-held');
  await h.call('upsertPolicy', { policy: { table: LIVE, hotDays: 30, archiveBeforeDelete: false, archiveDays: 5, enabled: true } });
  for (const d of [40, 41]) {
    await h.pg.query('SELECT ensure_partition($1, $2)', [LIVE, utcDay(d)]);
    await insertStatusLogs(h.pg, free.serverId, at(d, 1), at(d, 3), 100);
  }
  await insertStatusLogs(h.pg, held.serverId, at(40, 1), at(40, 3), 30); // kept by the hold: archived
  await insertStatusLogs(h.pg, free.serverId, at(60, 1), at(60, 3), 70); // in the default partition: deleted row by row
  await h.call('placeLegalHold', { subjectType: HoldSubjectType.HOLD_SUBJECT_TYPE_SERVER, subjectId: held.serverId, reason: 'metrics test' });

  await h.call('runRetention', { policy: LIVE, dryRun: true });
  expect(await reader.counter('mcp.retention.rows')).toEqual([]);

  const { run } = await h.call('runRetention', { policy: LIVE });
  expect(run!.status).toBe(RunStatus.RUN_STATUS_SUCCEEDED);
  expect(await count(h.pg, ARCHIVE)).toBe(30);
  const first = await reader.counter('mcp.retention.rows');
  expect(first).toHaveLength(3);
  expect(first).toEqual(
    expect.arrayContaining([
      { attributes: { table: LIVE, action: 'dropped_partition_rows' }, value: 200 },
      { attributes: { table: LIVE, action: 'deleted' }, value: 70 },
      { attributes: { table: LIVE, action: 'archived' }, value: 30 },
    ]),
  );

  // Released, the held rows expire from the archive (past its 5 days).
  const { holds } = await h.call('listLegalHolds', {});
  await h.call('releaseLegalHold', { id: holds[0].id, reason: 'done' });
  await h.call('runRetention', { policy: LIVE });
  expect(await count(h.pg, ARCHIVE)).toBe(0);
  const expired = (await reader.counter('mcp.retention.rows')).filter((p) => p.attributes.table === ARCHIVE);
  expect(expired).toEqual([{ attributes: { table: ARCHIVE, action: 'deleted' }, value: 30 }]);
});
