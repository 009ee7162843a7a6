import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Retention service: one policy per time-partitioned table, the structured
 * history of runs (system_logs keeps the seed's one-line-per-run record), and
 * legal holds.
 *
 * The seeds' defaults disagree: seed 000 deletes connection logs after 90 days
 * and status logs after 30, yet archives them "after 1 year" and "after 6
 * months", which would never find a row. Here the cleanup ages are the hot
 * window (how long rows stay in the live table) and the archive ages are how
 * old a row may grow before it leaves the archive: rows move to the archive
 * at 90 / 30 days and stay there 275 / 152 more days (1 year / 6 months in
 * all). Audit logs follow seed 004: archived with a sha256 checksum after 90
 * days, and kept in the archive indefinitely (archive_days NULL).
 */
export class Retention1735689600007 implements MigrationInterface {
  name = 'Retention1735689600007';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
CREATE TABLE retention_policies (
    table_name TEXT PRIMARY KEY
        CHECK (table_name IN ('agent_mcp_connection_logs', 'mcp_server_status_logs', 'audit_logs')),
    hot_days INTEGER NOT NULL CHECK (hot_days BETWEEN 1 AND 36500),
    archive_before_delete BOOLEAN NOT NULL,
    -- How long rows stay in the archive after leaving the live table; NULL = indefinitely.
    archive_days INTEGER CHECK (archive_days BETWEEN 1 AND 36500),
    enabled BOOLEAN NOT NULL DEFAULT true,
    -- A policy with no successful run within this interval is reported overdue.
    expected_interval_hours INTEGER NOT NULL DEFAULT 26 CHECK (expected_interval_hours BETWEEN 1 AND 8784),
    updated_by UUID,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE retention_policies IS 'Per table: days kept hot, archive or drop when they expire, days kept in the archive';

INSERT INTO retention_policies (table_name, hot_days, archive_before_delete, archive_days) VALUES
  ('agent_mcp_connection_logs', 90, true, 275),
  ('mcp_server_status_logs', 30, true, 152),
  ('audit_logs', 90, true, NULL);

CREATE TABLE retention_runs (
    id UUID PRIMARY KEY,
    -- A table name, or 'all'.
    policy TEXT NOT NULL,
    dry_run BOOLEAN NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    requested_by UUID,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    -- Per table: cutoffs, row counts and the step taken on each partition.
    results JSONB NOT NULL DEFAULT '{}'::jsonb,
    error TEXT,
    CHECK ((status = 'running') = (finished_at IS NULL))
);
COMMENT ON TABLE retention_runs IS 'Retention run history: counts per table and partition; updated as each step commits';
CREATE INDEX idx_retention_runs_started ON retention_runs (started_at DESC, id DESC);
CREATE INDEX idx_retention_runs_running ON retention_runs (started_at) WHERE status = 'running';

CREATE TABLE legal_holds (
    id UUID PRIMARY KEY,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('user', 'server', 'agent', 'time_range')),
    -- users.id, mcp_servers.id or agents.id; none for a pure time range.
    subject_id UUID,
    -- Optional narrowing (required for a time range): rows with starts_at <= time < ends_at.
    starts_at TIMESTAMPTZ,
    ends_at TIMESTAMPTZ,
    reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    placed_by UUID NOT NULL,
    placed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    released_at TIMESTAMPTZ,
    released_by UUID,
    release_reason TEXT,
    CHECK ((subject_type = 'time_range') = (subject_id IS NULL)),
    CHECK (subject_type <> 'time_range' OR starts_at IS NOT NULL OR ends_at IS NOT NULL),
    CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at),
    CHECK ((released_at IS NULL) = (released_by IS NULL))
);
COMMENT ON TABLE legal_holds IS 'Rows matching an active hold are never deleted, dropped or expired from an archive';
CREATE INDEX idx_legal_holds_active ON legal_holds (subject_type, subject_id) WHERE released_at IS NULL;
CREATE INDEX idx_legal_holds_placed ON legal_holds (placed_at DESC, id DESC);
`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
DROP TABLE IF EXISTS legal_holds, retention_runs, retention_policies;
`);
  }
}
