import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Identity, MCP servers, agents and their connections, configuration and
 * access control (seed 004), reconciled with the tables seed 000 references:
 *
 *   seed 000 `auth.users`              -> view over `users` (FKs point at users)
 *   seed 000 `auth.uid()`              -> reads the per-transaction setting app.current_user_id
 *   seed 000 `account_tool_instances`  -> view over `mcp_servers` (FKs point at mcp_servers)
 *   seed 000 `user_roles(user_id, role)` and seed 004 role definitions
 *                                      -> `roles` (definitions) + `user_roles` (grants)
 *
 * See docs/schema.md for the full mapping.
 */
export class CoreSchema1735689600000 implements MigrationInterface {
  name = 'CoreSchema1735689600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
CREATE SCHEMA IF NOT EXISTS auth;

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;

-- Role definitions (seed 004 "user_roles": system and custom roles, JSON
-- permission arrays, hierarchical inheritance through parent_role).
CREATE TABLE roles (
    name TEXT PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{1,62}$'),
    description TEXT,
    permissions JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(permissions) = 'array'),
    is_system_role BOOLEAN NOT NULL DEFAULT false,
    parent_role TEXT REFERENCES roles(name) ON DELETE RESTRICT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (parent_role IS NULL OR parent_role <> name)
);
CREATE TRIGGER roles_updated_at BEFORE UPDATE ON roles FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO roles (name, description, permissions, is_system_role, parent_role) VALUES
  ('viewer', 'Reads what the user owns', '["connection_logs:read","status:read","audit:read_own"]', true, NULL),
  ('service', 'Internal services: write events, report status, record audit events',
     '["connection_logs:write","connection_logs:read","registry:write","status:write","status:read","audit:write","security_events:write"]', true, NULL),
  ('retention_operator', 'Runs retention and manages legal holds',
     '["retention:run","retention:read","retention:manage_policies","legal_hold:manage","status:read"]', true, 'viewer'),
  ('auditor', 'Reads and exports the audit trail, verifies integrity',
     '["audit:read","audit:export","audit:verify","security_events:read"]', true, 'viewer'),
  ('admin', 'Everything', '["*"]', true, NULL);

-- seed 004 "users": MFA, lockout, password policy, API keys with expiry, soft delete.
CREATE TABLE users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    username TEXT NOT NULL,
    email TEXT NOT NULL,
    full_name TEXT,
    password_hash TEXT,
    password_changed_at TIMESTAMPTZ,
    must_change_password BOOLEAN NOT NULL DEFAULT false,
    mfa_enabled BOOLEAN NOT NULL DEFAULT false,
    mfa_secret_encrypted BYTEA,
    failed_login_attempts INTEGER NOT NULL DEFAULT 0 CHECK (failed_login_attempts >= 0),
    locked_until TIMESTAMPTZ,
    last_login_at TIMESTAMPTZ,
    last_login_ip INET,
    api_key_hash TEXT,
    api_key_expires_at TIMESTAMPTZ,
    is_active BOOLEAN NOT NULL DEFAULT true,
    deleted_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX idx_users_username ON users (lower(username)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX idx_users_email ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX idx_users_api_key_hash ON users (api_key_hash) WHERE api_key_hash IS NOT NULL;
CREATE TRIGGER users_updated_at BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Role grants. Seed 000's policies query user_roles(user_id, role) verbatim.
CREATE TABLE user_roles (
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    granted_by UUID REFERENCES users(id) ON DELETE SET NULL,
    granted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ,
    PRIMARY KEY (user_id, role)
);
CREATE INDEX idx_user_roles_role ON user_roles (role);

-- seed 004 "user_sessions".
CREATE TABLE user_sessions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_token_hash TEXT NOT NULL UNIQUE,
    device_fingerprint TEXT,
    ip_address INET,
    user_agent TEXT,
    is_active BOOLEAN NOT NULL DEFAULT true,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_activity_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    revoked_reason TEXT,
    CHECK (expires_at > created_at)
);
CREATE INDEX idx_user_sessions_user_active ON user_sessions (user_id, is_active);
CREATE INDEX idx_user_sessions_expires ON user_sessions (expires_at) WHERE is_active;

-- seed 004 "security_policies".
CREATE TABLE security_policies (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    policy_type TEXT NOT NULL DEFAULT 'COMPOSITE'
        CHECK (policy_type IN ('NETWORK', 'AUTHENTICATION', 'RESOURCE', 'THREAT_DETECTION', 'COMPOSITE')),
    network_rules JSONB NOT NULL DEFAULT '{}'::jsonb,
    authentication_rules JSONB NOT NULL DEFAULT '{}'::jsonb,
    resource_restrictions JSONB NOT NULL DEFAULT '{}'::jsonb,
    threat_detection JSONB NOT NULL DEFAULT '{}'::jsonb,
    response_actions JSONB NOT NULL DEFAULT '{}'::jsonb,
    parent_policy_id UUID REFERENCES security_policies(id) ON DELETE SET NULL,
    priority INTEGER NOT NULL DEFAULT 100,
    is_active BOOLEAN NOT NULL DEFAULT true,
    created_by UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_security_policies_active_priority ON security_policies (is_active, priority);
CREATE TRIGGER security_policies_updated_at BEFORE UPDATE ON security_policies FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- seed 004 "environments": per-environment config and limits, maintenance
-- windows, deployment tracking with rollback.
CREATE TABLE environments (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    environment_type TEXT NOT NULL DEFAULT 'DEVELOPMENT'
        CHECK (environment_type IN ('DEVELOPMENT', 'STAGING', 'PRODUCTION')),
    config JSONB NOT NULL DEFAULT '{}'::jsonb,
    resource_limits JSONB NOT NULL DEFAULT '{}'::jsonb,
    maintenance_window_start TIMESTAMPTZ,
    maintenance_window_end TIMESTAMPTZ,
    current_deployment_version TEXT,
    previous_deployment_version TEXT,
    last_deployed_at TIMESTAMPTZ,
    is_active BOOLEAN NOT NULL DEFAULT true,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (maintenance_window_end IS NULL OR maintenance_window_start IS NULL
           OR maintenance_window_end > maintenance_window_start)
);
CREATE TRIGGER environments_updated_at BEFORE UPDATE ON environments FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- seed 004 "mcp_servers" (also seed 000's account_tool_instances).
CREATE TABLE mcp_servers (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    owner_id UUID REFERENCES users(id) ON DELETE SET NULL,
    environment_id UUID REFERENCES environments(id) ON DELETE SET NULL,
    security_policy_id UUID REFERENCES security_policies(id) ON DELETE SET NULL,
    transport TEXT NOT NULL DEFAULT 'stdio' CHECK (transport IN ('stdio', 'sse', 'streamable_http', 'websocket')),
    endpoint_url TEXT,
    command TEXT,
    config JSONB NOT NULL DEFAULT '{}'::jsonb,
    status TEXT NOT NULL DEFAULT 'PENDING'
        CHECK (status IN ('PENDING', 'STARTING', 'RUNNING', 'STOPPING', 'STOPPED', 'ERROR', 'MAINTENANCE')),
    health TEXT NOT NULL DEFAULT 'UNKNOWN'
        CHECK (health IN ('UNKNOWN', 'HEALTHY', 'DEGRADED', 'UNHEALTHY')),
    is_enabled BOOLEAN NOT NULL DEFAULT true,
    cpu_usage NUMERIC(6,2) CHECK (cpu_usage IS NULL OR cpu_usage >= 0),
    memory_usage NUMERIC(12,2) CHECK (memory_usage IS NULL OR memory_usage >= 0),
    cpu_limit NUMERIC(6,2) CHECK (cpu_limit IS NULL OR cpu_limit > 0),
    memory_limit_mb INTEGER CHECK (memory_limit_mb IS NULL OR memory_limit_mb > 0),
    health_check_interval_seconds INTEGER NOT NULL DEFAULT 30 CHECK (health_check_interval_seconds > 0),
    health_check_timeout_seconds INTEGER NOT NULL DEFAULT 5 CHECK (health_check_timeout_seconds > 0),
    stale_after_seconds INTEGER NOT NULL DEFAULT 90 CHECK (stale_after_seconds > 0),
    restart_policy TEXT NOT NULL DEFAULT 'on-failure' CHECK (restart_policy IN ('never', 'on-failure', 'always')),
    max_restarts INTEGER NOT NULL DEFAULT 3 CHECK (max_restarts >= 0),
    restart_count INTEGER NOT NULL DEFAULT 0 CHECK (restart_count >= 0),
    current_status JSONB NOT NULL DEFAULT '{}'::jsonb,
    last_health_check TIMESTAMPTZ,
    last_heartbeat_at TIMESTAMPTZ,
    last_activity_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_mcp_servers_owner_status ON mcp_servers (owner_id, status);
CREATE INDEX idx_mcp_servers_health_check ON mcp_servers (last_health_check, status);
CREATE INDEX idx_mcp_servers_environment ON mcp_servers (environment_id);
CREATE TRIGGER mcp_servers_updated_at BEFORE UPDATE ON mcp_servers FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE agents (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    is_active BOOLEAN NOT NULL DEFAULT true,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_agents_user_id ON agents (user_id);
CREATE TRIGGER agents_updated_at BEFORE UPDATE ON agents FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE agent_mcp_connections (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    mcp_server_instance_id UUID NOT NULL REFERENCES mcp_servers(id) ON DELETE CASCADE,
    is_active BOOLEAN NOT NULL DEFAULT true,
    status TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_agent_mcp_connections_agent ON agent_mcp_connections (agent_id);
CREATE INDEX idx_agent_mcp_connections_server ON agent_mcp_connections (mcp_server_instance_id) WHERE is_active;
CREATE TRIGGER agent_mcp_connections_updated_at BEFORE UPDATE ON agent_mcp_connections FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- seed 004 "configurations": versioned, scoped, approval workflow, encrypted secrets.
CREATE TABLE configurations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    key TEXT NOT NULL,
    value JSONB,
    encrypted_value BYTEA,
    is_secret BOOLEAN NOT NULL DEFAULT false,
    scope TEXT NOT NULL DEFAULT 'GLOBAL' CHECK (scope IN ('GLOBAL', 'ENVIRONMENT', 'SERVER')),
    environment_id UUID REFERENCES environments(id) ON DELETE CASCADE,
    mcp_server_id UUID REFERENCES mcp_servers(id) ON DELETE CASCADE,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version > 0),
    status TEXT NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT', 'PENDING_APPROVAL', 'ACTIVE', 'ARCHIVED')),
    requires_approval BOOLEAN NOT NULL DEFAULT false,
    approved_by UUID REFERENCES users(id) ON DELETE SET NULL,
    approved_at TIMESTAMPTZ,
    validation_schema JSONB,
    created_by UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- secrets are only ever stored encrypted
    CHECK (NOT is_secret OR (value IS NULL AND encrypted_value IS NOT NULL)),
    CHECK ((scope = 'SERVER') = (mcp_server_id IS NOT NULL)),
    CHECK ((scope = 'ENVIRONMENT') = (environment_id IS NOT NULL))
);
CREATE UNIQUE INDEX idx_config_unique_server_key ON configurations (mcp_server_id, key, status)
    WHERE mcp_server_id IS NOT NULL AND status = 'ACTIVE';
CREATE UNIQUE INDEX idx_config_unique_environment_key ON configurations (environment_id, key)
    WHERE environment_id IS NOT NULL AND status = 'ACTIVE';
CREATE UNIQUE INDEX idx_config_unique_global_key ON configurations (key)
    WHERE scope = 'GLOBAL' AND status = 'ACTIVE';
CREATE TRIGGER configurations_updated_at BEFORE UPDATE ON configurations FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- seed 004 "configuration_history".
CREATE TABLE configuration_history (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    configuration_id UUID NOT NULL REFERENCES configurations(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    change_type TEXT NOT NULL CHECK (change_type IN ('CREATE', 'UPDATE', 'APPROVE', 'ROLLBACK', 'ARCHIVE')),
    old_value JSONB,
    new_value JSONB,
    change_reason TEXT,
    changed_by UUID REFERENCES users(id) ON DELETE SET NULL,
    approved_by UUID REFERENCES users(id) ON DELETE SET NULL,
    approved_at TIMESTAMPTZ,
    rolled_back_from_version INTEGER,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (configuration_id, version, change_type)
);
CREATE INDEX idx_configuration_history_config_changed ON configuration_history (configuration_id, changed_at);

-- seed 004 "access_controls": per-resource, time-limited, conditional grants with quotas.
CREATE TABLE access_controls (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    mcp_server_id UUID REFERENCES mcp_servers(id) ON DELETE CASCADE,
    resource_type TEXT NOT NULL DEFAULT 'MCP_SERVER'
        CHECK (resource_type IN ('MCP_SERVER', 'AGENT', 'CONFIGURATION', 'ENVIRONMENT', 'AUDIT_LOG')),
    resource_id UUID,
    permissions JSONB NOT NULL DEFAULT '["read"]'::jsonb CHECK (jsonb_typeof(permissions) = 'array'),
    conditions JSONB NOT NULL DEFAULT '{}'::jsonb,
    valid_from TIMESTAMPTZ NOT NULL DEFAULT now(),
    valid_until TIMESTAMPTZ,
    usage_quota INTEGER CHECK (usage_quota IS NULL OR usage_quota >= 0),
    usage_count INTEGER NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
    last_used_at TIMESTAMPTZ,
    granted_by UUID REFERENCES users(id) ON DELETE SET NULL,
    granted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_by UUID REFERENCES users(id) ON DELETE SET NULL,
    revoked_at TIMESTAMPTZ,
    reason TEXT,
    CHECK (valid_until IS NULL OR valid_until > valid_from),
    CHECK (mcp_server_id IS NOT NULL OR resource_id IS NOT NULL)
);
CREATE INDEX idx_access_controls_user_server ON access_controls (user_id, mcp_server_id);
CREATE INDEX idx_access_controls_resource ON access_controls (resource_type, resource_id);

-- seed 004 "rate_limits": per user / IP / endpoint, sliding window.
CREATE TABLE rate_limits (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    scope TEXT NOT NULL CHECK (scope IN ('GLOBAL', 'USER', 'IP', 'ENDPOINT', 'USER_ENDPOINT')),
    user_id UUID REFERENCES users(id) ON DELETE CASCADE,
    ip_address INET,
    endpoint TEXT,
    security_policy_id UUID REFERENCES security_policies(id) ON DELETE SET NULL,
    requests_limit INTEGER NOT NULL CHECK (requests_limit > 0),
    window_seconds INTEGER NOT NULL DEFAULT 60 CHECK (window_seconds > 0),
    block_on_exceed BOOLEAN NOT NULL DEFAULT true,
    block_duration_seconds INTEGER NOT NULL DEFAULT 60 CHECK (block_duration_seconds >= 0),
    current_count INTEGER NOT NULL DEFAULT 0 CHECK (current_count >= 0),
    window_start TIMESTAMPTZ NOT NULL DEFAULT now(),
    blocked_until TIMESTAMPTZ,
    is_active BOOLEAN NOT NULL DEFAULT true,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (scope <> 'USER' OR user_id IS NOT NULL),
    CHECK (scope <> 'IP' OR ip_address IS NOT NULL),
    CHECK (scope <> 'ENDPOINT' OR endpoint IS NOT NULL)
);
CREATE INDEX idx_rate_limits_lookup ON rate_limits (scope, user_id, endpoint) WHERE is_active;
CREATE TRIGGER rate_limits_updated_at BEFORE UPDATE ON rate_limits FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Supabase compatibility, so seed 000's SQL runs unchanged. The services set
-- app.current_user_id per transaction (set_config(..., true)); unset = NULL.
CREATE OR REPLACE FUNCTION auth.uid() RETURNS UUID LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('app.current_user_id', true), '')::uuid
$$;
CREATE VIEW auth.users AS
  SELECT id, email, username, full_name, created_at, updated_at FROM public.users WHERE deleted_at IS NULL;
CREATE VIEW account_tool_instances AS
  SELECT id, name AS instance_name_on_toolbox, owner_id AS account_id, status, health, is_enabled,
         created_at, updated_at
  FROM mcp_servers;
`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
DROP VIEW IF EXISTS account_tool_instances;
DROP VIEW IF EXISTS auth.users;
DROP FUNCTION IF EXISTS auth.uid();
DROP TABLE IF EXISTS rate_limits, access_controls, configuration_history, configurations,
  agent_mcp_connections, agents, mcp_servers, environments, security_policies, user_sessions,
  user_roles, users, roles;
DROP FUNCTION IF EXISTS set_updated_at();
DROP SCHEMA IF EXISTS auth;
`);
  }
}
