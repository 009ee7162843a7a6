import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Seed 000 (WBS 4.2.2): connection logs, server status logs, their indexes,
 * archives, cleanup/archive functions, helper views and functions, and RLS.
 * Deviations from the seed's SQL, each forced by PostgreSQL, are listed in
 * docs/schema.md ("Deviations").
 */
export class ConnectionLogging1735689600002 implements MigrationInterface {
  name = 'ConnectionLogging1735689600002';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
-- ---------------------------------------------------------------- tables
CREATE TABLE agent_mcp_connection_logs (
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    connection_id UUID NOT NULL REFERENCES agent_mcp_connections(id) ON DELETE CASCADE,
    event_type TEXT NOT NULL CHECK (event_type IN (
        'connected', 'disconnected', 'error', 'testing',
        'status_change', 'activated', 'deactivated',
        'config_updated', 'usage_recorded'
    )),
    event_details TEXT,
    old_status TEXT,
    new_status TEXT,
    request_data JSONB,
    response_data JSONB,
    error_data JSONB,
    latency_ms INTEGER CHECK (latency_ms >= 0),
    bytes_transferred BIGINT CHECK (bytes_transferred >= 0),
    timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by UUID REFERENCES users(id),
    user_agent TEXT,
    ip_address INET,
    session_id TEXT,
    -- Commit-order position for gapless live tails (see docs/schema.md).
    ingest_xid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    PRIMARY KEY (id, timestamp)
) PARTITION BY RANGE (timestamp);

COMMENT ON TABLE agent_mcp_connection_logs IS 'Audit trail and event logs for agent-MCP connections';
COMMENT ON COLUMN agent_mcp_connection_logs.connection_id IS 'Reference to the agent-MCP connection';
COMMENT ON COLUMN agent_mcp_connection_logs.event_type IS 'Type of event that occurred';
COMMENT ON COLUMN agent_mcp_connection_logs.event_details IS 'Human-readable description of the event';
COMMENT ON COLUMN agent_mcp_connection_logs.old_status IS 'Previous connection status (for status changes)';
COMMENT ON COLUMN agent_mcp_connection_logs.new_status IS 'New connection status (for status changes)';
COMMENT ON COLUMN agent_mcp_connection_logs.request_data IS 'Request data for debugging (JSON)';
COMMENT ON COLUMN agent_mcp_connection_logs.response_data IS 'Response data for debugging (JSON)';
COMMENT ON COLUMN agent_mcp_connection_logs.error_data IS 'Error information for failed operations';
COMMENT ON COLUMN agent_mcp_connection_logs.latency_ms IS 'Request latency in milliseconds';
COMMENT ON COLUMN agent_mcp_connection_logs.bytes_transferred IS 'Number of bytes transferred';
COMMENT ON COLUMN agent_mcp_connection_logs.ingest_xid IS 'Writing transaction id (xid8 as bigint): commit-order cursor for live tails';

CREATE TABLE mcp_server_status_logs (
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    server_id UUID NOT NULL REFERENCES mcp_servers(id) ON DELETE CASCADE,
    previous_status JSONB,
    current_status JSONB,
    source TEXT NOT NULL CHECK (source IN ('dtma', 'heartbeat', 'manual', 'system')),
    details TEXT,
    health_check_result JSONB,
    heartbeat_data JSONB,
    response_time_ms INTEGER CHECK (response_time_ms >= 0),
    uptime_seconds BIGINT CHECK (uptime_seconds >= 0),
    timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by UUID REFERENCES users(id),
    sync_session_id UUID,
    batch_id UUID,
    ingest_xid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    PRIMARY KEY (id, timestamp)
) PARTITION BY RANGE (timestamp);

COMMENT ON TABLE mcp_server_status_logs IS 'Status synchronization history for MCP servers';
COMMENT ON COLUMN mcp_server_status_logs.server_id IS 'Reference to the MCP server instance';
COMMENT ON COLUMN mcp_server_status_logs.previous_status IS 'Previous server status (JSON)';
COMMENT ON COLUMN mcp_server_status_logs.current_status IS 'Current server status (JSON)';
COMMENT ON COLUMN mcp_server_status_logs.source IS 'Source of the status update';
COMMENT ON COLUMN mcp_server_status_logs.details IS 'Additional details about the status change';
COMMENT ON COLUMN mcp_server_status_logs.health_check_result IS 'Result of health check (JSON)';
COMMENT ON COLUMN mcp_server_status_logs.heartbeat_data IS 'Heartbeat monitoring data (JSON)';
COMMENT ON COLUMN mcp_server_status_logs.response_time_ms IS 'Server response time in milliseconds';
COMMENT ON COLUMN mcp_server_status_logs.uptime_seconds IS 'Server uptime in seconds';
COMMENT ON COLUMN mcp_server_status_logs.sync_session_id IS 'ID of the synchronization session';
COMMENT ON COLUMN mcp_server_status_logs.batch_id IS 'ID of the batch operation';
COMMENT ON COLUMN mcp_server_status_logs.ingest_xid IS 'Writing transaction id (xid8 as bigint): commit-order cursor for watchers';

-- ---------------------------------------------------------------- indexes
CREATE INDEX idx_agent_mcp_connection_logs_connection_id ON agent_mcp_connection_logs(connection_id);
CREATE INDEX idx_agent_mcp_connection_logs_timestamp ON agent_mcp_connection_logs(timestamp);
CREATE INDEX idx_agent_mcp_connection_logs_event_type ON agent_mcp_connection_logs(event_type);
CREATE INDEX idx_agent_mcp_connection_logs_created_by ON agent_mcp_connection_logs(created_by);
CREATE INDEX idx_agent_mcp_connection_logs_connection_timestamp ON agent_mcp_connection_logs(connection_id, timestamp);
CREATE INDEX idx_agent_mcp_connection_logs_event_timestamp ON agent_mcp_connection_logs(event_type, timestamp);
CREATE INDEX idx_agent_mcp_connection_logs_errors ON agent_mcp_connection_logs(timestamp)
    WHERE event_type = 'error';
CREATE INDEX idx_agent_mcp_connection_logs_ingest_xid ON agent_mcp_connection_logs USING brin (ingest_xid);

CREATE INDEX idx_mcp_server_status_logs_server_id ON mcp_server_status_logs(server_id);
CREATE INDEX idx_mcp_server_status_logs_timestamp ON mcp_server_status_logs(timestamp);
CREATE INDEX idx_mcp_server_status_logs_source ON mcp_server_status_logs(source);
CREATE INDEX idx_mcp_server_status_logs_session_id ON mcp_server_status_logs(sync_session_id);
CREATE INDEX idx_mcp_server_status_logs_server_timestamp ON mcp_server_status_logs(server_id, timestamp);
CREATE INDEX idx_mcp_server_status_logs_source_timestamp ON mcp_server_status_logs(source, timestamp);
-- Seed: (server_id, timestamp) WHERE timestamp > NOW() - INTERVAL '7 days'. NOW() is not
-- allowed in an index predicate; daily partitions give "recent" its own small indexes, and
-- this descending index serves newest-first history reads of one server.
CREATE INDEX idx_mcp_server_status_logs_recent ON mcp_server_status_logs(server_id, timestamp DESC);
CREATE INDEX idx_mcp_server_status_logs_ingest_xid ON mcp_server_status_logs USING brin (ingest_xid);

-- ---------------------------------------------------------------- archives
-- Same columns, constraints and indexes as the live tables (LIKE … INCLUDING ALL),
-- partitioned with the same bounds, so retention can move a whole partition
-- from the live table to its archive without copying rows.
CREATE TABLE agent_mcp_connection_logs_archive (
    LIKE agent_mcp_connection_logs INCLUDING ALL
) PARTITION BY RANGE (timestamp);
CREATE TABLE mcp_server_status_logs_archive (
    LIKE mcp_server_status_logs INCLUDING ALL
) PARTITION BY RANGE (timestamp);
-- Seed: EXTRACT(YEAR FROM timestamp) is not immutable for timestamptz (it depends on
-- the session time zone); the year is taken in UTC instead.
CREATE INDEX idx_agent_mcp_connection_logs_archive_timestamp_year
    ON agent_mcp_connection_logs_archive(EXTRACT(YEAR FROM (timestamp AT TIME ZONE 'UTC')), timestamp);
CREATE INDEX idx_mcp_server_status_logs_archive_timestamp_year
    ON mcp_server_status_logs_archive(EXTRACT(YEAR FROM (timestamp AT TIME ZONE 'UTC')), timestamp);

-- ---------------------------------------------------------------- partitions
CREATE TABLE agent_mcp_connection_logs_default PARTITION OF agent_mcp_connection_logs DEFAULT;
CREATE TABLE mcp_server_status_logs_default PARTITION OF mcp_server_status_logs DEFAULT;
CREATE TABLE agent_mcp_connection_logs_archive_default PARTITION OF agent_mcp_connection_logs_archive DEFAULT;
CREATE TABLE mcp_server_status_logs_archive_default PARTITION OF mcp_server_status_logs_archive DEFAULT;

INSERT INTO partitioned_tables (parent_table, partition_column, width, premake) VALUES
  ('agent_mcp_connection_logs', 'timestamp', 'day', 7),
  ('mcp_server_status_logs', 'timestamp', 'day', 7),
  ('agent_mcp_connection_logs_archive', 'timestamp', 'day', 1),
  ('mcp_server_status_logs_archive', 'timestamp', 'day', 1);
SELECT maintain_partitions('agent_mcp_connection_logs');
SELECT maintain_partitions('mcp_server_status_logs');

-- ---------------------------------------------------------------- commit horizon
-- Live tails read rows in ingest_xid order, and only below this horizon: every
-- transaction of THIS database with a smaller id has finished, so no row can
-- appear behind a tail's cursor later. The snapshot's xmin would do, but it is
-- cluster-wide: a long transaction in another database would stall every tail.
-- In-progress ids positively attributed to another database (pg_stat_activity,
-- read after the snapshot was taken) are therefore ignored; anything else counts.
CREATE OR REPLACE FUNCTION commit_horizon(p_snapshot pg_snapshot) RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    horizon BIGINT;
BEGIN
    PERFORM pg_stat_clear_snapshot();
    SELECT coalesce(min(x::text::bigint), pg_snapshot_xmax(p_snapshot)::text::bigint) INTO horizon
      FROM pg_snapshot_xip(p_snapshot) AS x
     WHERE (x::text::bigint % 4294967296) NOT IN (
        SELECT backend_xid::text::bigint FROM pg_stat_activity
         WHERE backend_xid IS NOT NULL AND datname <> current_database());
    RETURN horizon;
END;
$$;

-- ---------------------------------------------------------------- system_logs
CREATE TABLE system_logs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    operation TEXT NOT NULL,
    details TEXT,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
COMMENT ON TABLE system_logs IS 'Maintenance operations: log cleanup, archival, retention runs';
CREATE INDEX idx_system_logs_operation_timestamp ON system_logs(operation, timestamp);

-- ---------------------------------------------------------------- retention functions
CREATE OR REPLACE FUNCTION cleanup_agent_mcp_connection_logs(retention_days INTEGER DEFAULT 90)
RETURNS INTEGER AS $$
DECLARE
    deleted_count INTEGER;
BEGIN
    IF retention_days IS NULL OR retention_days < 1 THEN
        RAISE EXCEPTION 'retention_days must be at least 1, got %', retention_days USING ERRCODE = '22023';
    END IF;

    DELETE FROM agent_mcp_connection_logs
    WHERE timestamp < NOW() - (retention_days || ' days')::INTERVAL;

    GET DIAGNOSTICS deleted_count = ROW_COUNT;

    INSERT INTO system_logs (operation, details, timestamp)
    VALUES (
        'log_cleanup',
        format('Cleaned up %s old agent connection logs (retention: %s days)', deleted_count, retention_days),
        NOW()
    );

    RETURN deleted_count;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION cleanup_mcp_server_status_logs(retention_days INTEGER DEFAULT 30)
RETURNS INTEGER AS $$
DECLARE
    deleted_count INTEGER;
BEGIN
    IF retention_days IS NULL OR retention_days < 1 THEN
        RAISE EXCEPTION 'retention_days must be at least 1, got %', retention_days USING ERRCODE = '22023';
    END IF;

    DELETE FROM mcp_server_status_logs
    WHERE timestamp < NOW() - (retention_days || ' days')::INTERVAL;

    GET DIAGNOSTICS deleted_count = ROW_COUNT;

    INSERT INTO system_logs (operation, details, timestamp)
    VALUES (
        'log_cleanup',
        format('Cleaned up %s old server status logs (retention: %s days)', deleted_count, retention_days),
        NOW()
    );

    RETURN deleted_count;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION archive_old_logs()
RETURNS TABLE(connection_logs_archived INTEGER, status_logs_archived INTEGER) AS $$
DECLARE
    conn_archived INTEGER;
    status_archived INTEGER;
BEGIN
    INSERT INTO agent_mcp_connection_logs_archive
    SELECT * FROM agent_mcp_connection_logs
    WHERE timestamp < NOW() - INTERVAL '1 year';

    GET DIAGNOSTICS conn_archived = ROW_COUNT;

    DELETE FROM agent_mcp_connection_logs
    WHERE timestamp < NOW() - INTERVAL '1 year';

    INSERT INTO mcp_server_status_logs_archive
    SELECT * FROM mcp_server_status_logs
    WHERE timestamp < NOW() - INTERVAL '6 months';

    GET DIAGNOSTICS status_archived = ROW_COUNT;

    DELETE FROM mcp_server_status_logs
    WHERE timestamp < NOW() - INTERVAL '6 months';

    RETURN QUERY SELECT conn_archived, status_archived;
END;
$$ LANGUAGE plpgsql;

-- ---------------------------------------------------------------- RLS
-- auth.uid() is the acting user the service set for the transaction. The table
-- owner (migrations, system jobs) bypasses RLS; services run user-scoped reads
-- as the mcp_app role, where every policy applies.
DO $$
BEGIN
    CREATE ROLE mcp_app NOLOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL; -- roles are cluster-wide: another database of this cluster created it
END
$$;
GRANT USAGE ON SCHEMA public, auth TO mcp_app;

ALTER TABLE agent_mcp_connection_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE mcp_server_status_logs ENABLE ROW LEVEL SECURITY;

CREATE POLICY "Users can view their own connection logs" ON agent_mcp_connection_logs
    FOR SELECT
    USING (
        connection_id IN (
            SELECT amc.id FROM agent_mcp_connections amc
            JOIN agents a ON amc.agent_id = a.id
            WHERE a.user_id = auth.uid()
        )
    );

CREATE POLICY "System can insert connection logs" ON agent_mcp_connection_logs
    FOR INSERT
    WITH CHECK (true);

CREATE POLICY "Users can view relevant status logs" ON mcp_server_status_logs
    FOR SELECT
    USING (
        server_id IN (
            SELECT DISTINCT amc.mcp_server_instance_id
            FROM agent_mcp_connections amc
            JOIN agents a ON amc.agent_id = a.id
            WHERE a.user_id = auth.uid() AND amc.is_active = true
        )
    );

CREATE POLICY "System can insert status logs" ON mcp_server_status_logs
    FOR INSERT
    WITH CHECK (true);

CREATE POLICY "Admins can view all connection logs" ON agent_mcp_connection_logs
    FOR SELECT
    USING (
        EXISTS (
            SELECT 1 FROM user_roles
            WHERE user_id = auth.uid()
            AND role = 'admin'
        )
    );

CREATE POLICY "Admins can view all status logs" ON mcp_server_status_logs
    FOR SELECT
    USING (
        EXISTS (
            SELECT 1 FROM user_roles
            WHERE user_id = auth.uid()
            AND role = 'admin'
        )
    );

GRANT SELECT, INSERT ON agent_mcp_connection_logs, mcp_server_status_logs TO mcp_app;
GRANT SELECT ON agents, agent_mcp_connections, mcp_servers, users, roles, user_roles,
    account_tool_instances, auth.users TO mcp_app;

-- ---------------------------------------------------------------- views
-- security_invoker (PostgreSQL 15+) makes the views apply the caller's RLS
-- instead of the view owner's, so a view never widens what a user can read.
CREATE VIEW recent_connection_activity WITH (security_invoker = true) AS
SELECT
    acl.timestamp,
    acl.event_type,
    acl.event_details,
    a.name AS agent_name,
    ati.instance_name_on_toolbox AS server_name,
    acl.latency_ms,
    u.email AS user_email
FROM agent_mcp_connection_logs acl
JOIN agent_mcp_connections amc ON acl.connection_id = amc.id
JOIN agents a ON amc.agent_id = a.id
JOIN account_tool_instances ati ON amc.mcp_server_instance_id = ati.id
JOIN auth.users u ON a.user_id = u.id
WHERE acl.timestamp > NOW() - INTERVAL '24 hours'
ORDER BY acl.timestamp DESC;

CREATE VIEW server_health_history WITH (security_invoker = true) AS
SELECT
    mssl.timestamp,
    ati.instance_name_on_toolbox AS server_name,
    mssl.previous_status->>'health' AS previous_health,
    mssl.current_status->>'health' AS current_health,
    mssl.source,
    mssl.response_time_ms,
    mssl.details
FROM mcp_server_status_logs mssl
JOIN account_tool_instances ati ON mssl.server_id = ati.id
WHERE mssl.timestamp > NOW() - INTERVAL '7 days'
ORDER BY mssl.timestamp DESC;

GRANT SELECT ON recent_connection_activity, server_health_history TO mcp_app;

-- ---------------------------------------------------------------- helper functions
CREATE OR REPLACE FUNCTION get_agent_connection_logs(
    p_agent_id UUID,
    p_hours INTEGER DEFAULT 24
)
RETURNS TABLE(
    -- Quoted: unquoted, "timestamp" is a syntax error as a RETURNS TABLE column.
    "timestamp" TIMESTAMPTZ,
    event_type TEXT,
    event_details TEXT,
    server_name TEXT,
    latency_ms INTEGER,
    error_data JSONB
) AS $$
BEGIN
    RETURN QUERY
    SELECT
        acl.timestamp,
        acl.event_type,
        acl.event_details,
        ati.instance_name_on_toolbox,
        acl.latency_ms,
        acl.error_data
    FROM agent_mcp_connection_logs acl
    JOIN agent_mcp_connections amc ON acl.connection_id = amc.id
    JOIN account_tool_instances ati ON amc.mcp_server_instance_id = ati.id
    WHERE amc.agent_id = p_agent_id
    AND acl.timestamp > NOW() - (p_hours || ' hours')::INTERVAL
    ORDER BY acl.timestamp DESC;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION get_server_status_history(
    p_server_id UUID,
    p_hours INTEGER DEFAULT 24
)
RETURNS TABLE(
    -- Quoted: unquoted, "timestamp" is a syntax error as a RETURNS TABLE column.
    "timestamp" TIMESTAMPTZ,
    previous_state TEXT,
    current_state TEXT,
    source TEXT,
    details TEXT,
    response_time_ms INTEGER
) AS $$
BEGIN
    RETURN QUERY
    SELECT
        mssl.timestamp,
        mssl.previous_status->>'state',
        mssl.current_status->>'state',
        mssl.source,
        mssl.details,
        mssl.response_time_ms
    FROM mcp_server_status_logs mssl
    WHERE mssl.server_id = p_server_id
    AND mssl.timestamp > NOW() - (p_hours || ' hours')::INTERVAL
    ORDER BY mssl.timestamp DESC;
END;
$$ LANGUAGE plpgsql;
`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
DROP FUNCTION IF EXISTS get_server_status_history(UUID, INTEGER);
DROP FUNCTION IF EXISTS get_agent_connection_logs(UUID, INTEGER);
DROP VIEW IF EXISTS server_health_history;
DROP VIEW IF EXISTS recent_connection_activity;
DROP FUNCTION IF EXISTS archive_old_logs();
DROP FUNCTION IF EXISTS cleanup_mcp_server_status_logs(INTEGER);
DROP FUNCTION IF EXISTS cleanup_agent_mcp_connection_logs(INTEGER);
DROP TABLE IF EXISTS system_logs;
DROP FUNCTION IF EXISTS commit_horizon(pg_snapshot);
DELETE FROM partitioned_tables WHERE parent_table IN ('agent_mcp_connection_logs', 'mcp_server_status_logs',
  'agent_mcp_connection_logs_archive', 'mcp_server_status_logs_archive');
DROP TABLE IF EXISTS agent_mcp_connection_logs_archive, mcp_server_status_logs_archive,
  agent_mcp_connection_logs, mcp_server_status_logs;
REVOKE ALL ON agents, agent_mcp_connections, mcp_servers, users, roles, user_roles,
    account_tool_instances, auth.users FROM mcp_app;
REVOKE USAGE ON SCHEMA public, auth FROM mcp_app;
`);
  }
}
