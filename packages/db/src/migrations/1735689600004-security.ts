import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Authentication and authorisation for every service (issue 4): API keys
 * (seed 004: "API key management with expiration"), change notifications so
 * every replica drops cached identities at once, sliding-window rate-limit
 * counters, and row-level security widened by access_controls grants.
 */
export class Security1735689600004 implements MigrationInterface {
  name = 'Security1735689600004';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
-- A key is shown once as mcp_<prefix>_<secret>. Only its SHA-256 is stored:
-- the secret is 256 random bits, so a fast hash is safe (nothing to brute-force)
-- and the prefix finds the row without scanning.
CREATE TABLE api_keys (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_prefix TEXT NOT NULL UNIQUE CHECK (key_prefix ~ '^[a-z0-9]{12}$'),
    key_hash TEXT NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    created_by UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    revoked_by UUID REFERENCES users(id) ON DELETE SET NULL,
    revoked_reason TEXT,
    locked_until TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    CHECK (expires_at IS NULL OR expires_at > created_at)
);
COMMENT ON TABLE api_keys IS 'API keys: only a SHA-256 of each key is stored; keys expire, can be revoked and locked out';
CREATE INDEX idx_api_keys_user ON api_keys (user_id);

-- Any change to who-may-do-what tells every replica to drop its identity cache.
CREATE OR REPLACE FUNCTION notify_auth_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mcp_auth_changes', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;
CREATE TRIGGER api_keys_auth_change AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_change();
CREATE TRIGGER users_auth_change AFTER UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_change();
CREATE TRIGGER roles_auth_change AFTER INSERT OR UPDATE OR DELETE ON roles
    FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_change();
CREATE TRIGGER user_roles_auth_change AFTER INSERT OR UPDATE OR DELETE ON user_roles
    FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_change();
CREATE TRIGGER rate_limits_auth_change AFTER INSERT OR UPDATE OR DELETE ON rate_limits
    FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_change();

-- Sliding-window counters shared by all replicas. UNLOGGED: losing counters in
-- a crash only forgives some requests, and it spares the WAL of every call.
CREATE UNLOGGED TABLE rate_limit_windows (
    bucket TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    hits INTEGER NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE UNIQUE INDEX idx_rate_limits_ip_block ON rate_limits (ip_address) WHERE scope = 'IP' AND endpoint IS NULL;

-- The service roles' system identity for actions no user took (sweepers, retention runs).
INSERT INTO users (id, username, email, full_name)
VALUES ('00000000-0000-0000-0000-000000000001', 'system', 'system@mcp.local', 'Platform system account')
ON CONFLICT DO NOTHING;

-- access_controls grants widen what a user reads (time-limited, per resource).
CREATE OR REPLACE FUNCTION auth.active_grant(p_resource_type TEXT, p_resource_id UUID) RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (
    SELECT 1 FROM access_controls ac
    WHERE ac.user_id = auth.uid()
      AND ac.revoked_at IS NULL
      AND ac.valid_from <= now()
      AND (ac.valid_until IS NULL OR ac.valid_until > now())
      AND ((p_resource_type = 'MCP_SERVER' AND ac.resource_type = 'MCP_SERVER' AND ac.mcp_server_id = p_resource_id)
        OR (ac.resource_type = p_resource_type AND ac.resource_id = p_resource_id))
  )
$$;

CREATE POLICY "Users can view connection logs they were granted" ON agent_mcp_connection_logs
    FOR SELECT
    USING (
        connection_id IN (
            SELECT amc.id FROM agent_mcp_connections amc
            WHERE auth.active_grant('MCP_SERVER', amc.mcp_server_instance_id)
               OR auth.active_grant('AGENT', amc.agent_id)
        )
    );
CREATE POLICY "Users can view status logs they were granted" ON mcp_server_status_logs
    FOR SELECT
    USING (auth.active_grant('MCP_SERVER', server_id));

GRANT SELECT ON access_controls TO mcp_app;
`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
REVOKE SELECT ON access_controls FROM mcp_app;
DROP POLICY IF EXISTS "Users can view status logs they were granted" ON mcp_server_status_logs;
DROP POLICY IF EXISTS "Users can view connection logs they were granted" ON agent_mcp_connection_logs;
DROP FUNCTION IF EXISTS auth.active_grant(TEXT, UUID);
DELETE FROM users WHERE id = '00000000-0000-0000-0000-000000000001';
DROP INDEX IF EXISTS idx_rate_limits_ip_block;
DROP TABLE IF EXISTS rate_limit_windows;
DROP TRIGGER IF EXISTS rate_limits_auth_change ON rate_limits;
DROP TRIGGER IF EXISTS user_roles_auth_change ON user_roles;
DROP TRIGGER IF EXISTS roles_auth_change ON roles;
DROP TRIGGER IF EXISTS users_auth_change ON users;
DROP TABLE IF EXISTS api_keys;
DROP FUNCTION IF EXISTS notify_auth_change();
`);
  }
}
