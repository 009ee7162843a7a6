import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Seed 004's audit and compliance tables: audit_logs (monthly partitions, as
 * the seed's create_monthly_partitions), security_events (incident workflow),
 * audit_logs_archive (sha256 checksums, legal hold).
 */
export class AuditAndSecurity1735689600003 implements MigrationInterface {
  name = 'AuditAndSecurity1735689600003';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
CREATE TABLE audit_logs (
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The actor as it was: no foreign key, so the trail never changes when a
    -- user is deleted (and a service principal may not be a user row).
    user_id UUID,
    action_type TEXT NOT NULL CHECK (length(action_type) BETWEEN 1 AND 200),
    resource_type TEXT,
    resource_id TEXT,
    mcp_server_id UUID,
    description TEXT,
    request_data JSONB,
    response_data JSONB,
    status_code INTEGER,
    duration_ms INTEGER CHECK (duration_ms >= 0),
    success BOOLEAN NOT NULL DEFAULT true,
    error_message TEXT,
    ip_address INET,
    user_agent TEXT,
    session_id TEXT,
    trace_id TEXT CHECK (trace_id ~ '^[0-9a-f]{32}$'),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
COMMENT ON TABLE audit_logs IS 'Comprehensive activity log: who did what to which resource, with sanitised request/response data';
COMMENT ON COLUMN audit_logs.trace_id IS 'W3C trace id of the audited call, to open its trace in Jaeger';

CREATE INDEX idx_audit_logs_created_action ON audit_logs (created_at, action_type);
CREATE INDEX idx_audit_logs_user_created ON audit_logs (user_id, created_at);
CREATE INDEX idx_audit_logs_resource ON audit_logs (resource_type, resource_id, created_at);
CREATE INDEX idx_audit_logs_server_created ON audit_logs (mcp_server_id, created_at) WHERE mcp_server_id IS NOT NULL;
CREATE INDEX idx_audit_logs_failures ON audit_logs (action_type, created_at)
    WHERE success = false;
CREATE INDEX idx_audit_logs_description_fts ON audit_logs
    USING gin(to_tsvector('english', description));

CREATE TABLE audit_logs_default PARTITION OF audit_logs DEFAULT;
INSERT INTO partitioned_tables (parent_table, partition_column, width, premake)
VALUES ('audit_logs', 'created_at', 'month', 2);
SELECT maintain_partitions('audit_logs');

-- Seed 004's function, kept callable. Its body and its example disagree on
-- the partition name (audit_logs_2025m01 vs audit_logs_y2025m01); it uses the
-- example's name through ensure_partition, which also drains the default partition.
-- Current and next month in UTC, like every partition bound here (the seed's
-- date_trunc('month', CURRENT_DATE) is local midnight: east of UTC that falls in
-- the previous UTC month).
CREATE OR REPLACE FUNCTION create_monthly_partitions()
RETURNS void AS $$
BEGIN
    PERFORM ensure_partition('audit_logs', now());
    PERFORM ensure_partition('audit_logs', (partition_bounds('month', now())).upper_bound);
END;
$$ LANGUAGE plpgsql;

CREATE TABLE security_events (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    event_type TEXT NOT NULL CHECK (length(event_type) BETWEEN 1 AND 100),
    severity TEXT NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    source_service TEXT,
    user_id UUID,
    ip_address INET,
    user_agent TEXT,
    description TEXT,
    threat_score NUMERIC(5,2) CHECK (threat_score BETWEEN 0 AND 100),
    indicators JSONB NOT NULL DEFAULT '{}'::jsonb,
    country_code TEXT CHECK (country_code ~ '^[A-Z]{2}$'),
    city TEXT,
    behavior_signals JSONB NOT NULL DEFAULT '{}'::jsonb,
    status TEXT NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'INVESTIGATING', 'RESOLVED', 'FALSE_POSITIVE')),
    assigned_to UUID REFERENCES users(id) ON DELETE SET NULL,
    assigned_at TIMESTAMPTZ,
    notes JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(notes) = 'array'),
    resolved BOOLEAN NOT NULL DEFAULT false,
    resolved_at TIMESTAMPTZ,
    resolved_by UUID REFERENCES users(id) ON DELETE SET NULL,
    resolution_notes TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (resolved = (status IN ('RESOLVED', 'FALSE_POSITIVE'))),
    CHECK (NOT resolved OR resolved_at IS NOT NULL)
);
COMMENT ON TABLE security_events IS 'Security-specific events: threat scoring, indicators, incident response workflow';
CREATE INDEX idx_security_events_occurred_severity ON security_events (occurred_at, severity);
CREATE INDEX idx_security_events_type_occurred ON security_events (event_type, occurred_at);
CREATE INDEX idx_security_events_ip_occurred ON security_events (ip_address, occurred_at);
CREATE INDEX idx_security_events_critical_unresolved ON security_events (occurred_at, event_type)
    WHERE severity IN ('HIGH', 'CRITICAL') AND resolved = false;
CREATE INDEX idx_security_events_description_fts ON security_events
    USING gin(to_tsvector('english', description));
CREATE TRIGGER security_events_updated_at BEFORE UPDATE ON security_events FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- audit_data is json, not jsonb: the seed's checksum is sha256 of the json
-- text, and json keeps that text byte for byte, so the checksum stays verifiable.
CREATE TABLE audit_logs_archive (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    original_audit_log_id UUID NOT NULL UNIQUE,
    audit_data JSON NOT NULL,
    checksum TEXT NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    archive_reason TEXT NOT NULL DEFAULT 'retention_policy',
    archived_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    retention_until TIMESTAMPTZ,
    legal_hold BOOLEAN NOT NULL DEFAULT false,
    legal_hold_reason TEXT
);
COMMENT ON TABLE audit_logs_archive IS 'Long-term compliance storage with integrity checksums and legal hold';
CREATE INDEX idx_audit_logs_archive_retention ON audit_logs_archive (retention_until) WHERE legal_hold = false;
CREATE INDEX idx_audit_logs_archive_archived_at ON audit_logs_archive (archived_at);
`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
DROP TABLE IF EXISTS audit_logs_archive, security_events;
DROP FUNCTION IF EXISTS create_monthly_partitions();
DELETE FROM partitioned_tables WHERE parent_table = 'audit_logs';
DROP TABLE IF EXISTS audit_logs;
`);
  }
}
