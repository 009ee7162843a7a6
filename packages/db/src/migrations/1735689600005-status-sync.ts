import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * status-sync (issue 5): stale-episode and snapshot bookkeeping on
 * mcp_servers, and idempotency keys for status reports.
 */
export class StatusSync1735689600005 implements MigrationInterface {
  name = 'StatusSync1735689600005';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
-- Stale episodes: set by the sweeper when it marks the server UNHEALTHY, cleared
-- by the next heartbeat (which records the recovery). "Not yet marked" is the
-- sweeper's condition, so an episode is marked once however many replicas sweep.
ALTER TABLE mcp_servers
    ADD COLUMN stale_since TIMESTAMPTZ,
    ADD COLUMN last_status_log_at TIMESTAMPTZ;
COMMENT ON COLUMN mcp_servers.stale_since IS 'Set while no heartbeat arrived within stale_after_seconds (marked by the stale sweeper); NULL otherwise';
COMMENT ON COLUMN mcp_servers.last_status_log_at IS 'Time of the newest mcp_server_status_logs row of this server (periodic heartbeat snapshots)';

-- Idempotency keys of status reports. A separate small table rather than a
-- report_id column on mcp_server_status_logs: a unique index on a partitioned
-- table must include the partition key (timestamp), so a retry would have to
-- resend the exact original timestamp, and the history would be keyed on two
-- columns for a lookup that only needs one. Keyed on (key, server): a single
-- report uses its report_id, a batch its batch_id with one key per server.
-- Rows are only needed while a client may still retry; the sweeper deletes
-- those older than a day.
CREATE TABLE mcp_server_status_report_keys (
    idempotency_key UUID NOT NULL,
    server_id UUID NOT NULL REFERENCES mcp_servers(id) ON DELETE CASCADE,
    log_id UUID NOT NULL,
    log_timestamp TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (idempotency_key, server_id)
);
COMMENT ON TABLE mcp_server_status_report_keys IS 'Idempotency keys of status reports (report_id or batch_id per server) and the history row each produced';
CREATE INDEX idx_mcp_server_status_report_keys_received ON mcp_server_status_report_keys (received_at);
`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
DROP TABLE IF EXISTS mcp_server_status_report_keys;
ALTER TABLE mcp_servers DROP COLUMN IF EXISTS last_status_log_at, DROP COLUMN IF EXISTS stale_since;
`);
  }
}
