import type { TableName } from './tables';

/** Stored in retention_runs.results (JSON) and returned by the RPCs. */
export type StepAction =
  | 'create_partition'
  | 'drain_default'
  | 'archive_partition'
  | 'drop_partition'
  | 'trim_rows'
  | 'expire_archive_partition'
  | 'expire_archive_rows'
  | 'finish_detached';

export interface StepRecord {
  action: StepAction;
  partition: string;
  rangeStart: string | null;
  rangeEnd: string | null;
  /** Dry run: rows the step would move or remove. Real run: rows it has moved or removed so far (committed). */
  rows: number;
  /** Rows past a cutoff preserved because of a legal hold (archived instead of deleted, or left in the archive). */
  heldRows: number;
  done: boolean;
}

export type RunStatus = 'running' | 'succeeded' | 'failed';

export interface TableRecord {
  table: TableName;
  status: RunStatus;
  error: string | null;
  cutoff: string;
  archiveCutoff: string | null;
  archiveBeforeDelete: boolean;
  steps: StepRecord[];
}

export interface TableTotals {
  rowsArchived: number;
  rowsDeleted: number;
  archiveRowsExpired: number;
  heldRows: number;
  rowsDrained: number;
  partitionsCreated: number;
}

/**
 * What a table's steps add up to. Rows leaving the live table are archived,
 * or deleted except the held ones, which go to the archive instead.
 */
export function tableTotals(record: TableRecord, dryRun: boolean): TableTotals {
  const t: TableTotals = { rowsArchived: 0, rowsDeleted: 0, archiveRowsExpired: 0, heldRows: 0, rowsDrained: 0, partitionsCreated: 0 };
  for (const s of record.steps) {
    t.heldRows += s.heldRows;
    switch (s.action) {
      case 'create_partition':
        if (dryRun || s.done) t.partitionsCreated += 1;
        break;
      case 'drain_default':
        t.rowsDrained += s.rows;
        break;
      case 'archive_partition':
        t.rowsArchived += s.rows;
        break;
      case 'expire_archive_partition':
      case 'expire_archive_rows':
        t.archiveRowsExpired += s.rows;
        break;
      case 'drop_partition':
      case 'trim_rows':
      case 'finish_detached':
        if (record.archiveBeforeDelete) {
          t.rowsArchived += s.rows;
        } else {
          t.rowsArchived += s.heldRows;
          t.rowsDeleted += s.rows - s.heldRows;
        }
        break;
    }
  }
  return t;
}
