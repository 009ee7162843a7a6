import { randomBytes } from 'node:crypto';
import type { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDatabase } from '../src/testing';
import { connect, HOUR, insertUser, pgError, rows, scalar } from './helpers';

/**
 * Seed 004 describes its tables in prose ("Database Tables", one bullet list
 * per table). One row per bullet, quoted verbatim, naming what implements it
 * in the migrated schema. Every bullet maps to schema objects; where the
 * behaviour itself lives in a service, a comment on the row says where.
 */
interface Bullet {
  table: string;
  bullet: string;
  /** "table.column" -> pg udt_name */
  columns: Record<string, string>;
  /** Constraints as pg_get_constraintdef() prints them, "table: definition". */
  constraints?: string[];
  /** "table.index" -> "[UNIQUE ]<method> (<keys>)[ WHERE <predicate>]", as pg_get_indexdef() prints it after USING. */
  indexes?: Record<string, string>;
  /** "table.trigger" */
  triggers?: string[];
  /** Functions, as to_regprocedure() reads them. */
  functions?: string[];
}

const BULLETS: Bullet[] = [
  // --- user_roles: definitions in roles, grants in user_roles (docs/schema.md, "Reconciling the two seeds")
  {
    table: 'user_roles',
    bullet: 'Defines role-based access control (RBAC) permissions',
    columns: { 'user_roles.user_id': 'uuid', 'user_roles.role': 'text', 'roles.name': 'text', 'roles.permissions': 'jsonb' },
    constraints: ['user_roles: FOREIGN KEY (role) REFERENCES roles(name) ON DELETE CASCADE'],
    functions: ['auth.has_permission(text)'],
  },
  {
    table: 'user_roles',
    bullet: 'System and custom roles with JSON permission arrays',
    columns: { 'roles.is_system_role': 'bool', 'roles.permissions': 'jsonb' },
    constraints: [`roles: CHECK ((jsonb_typeof(permissions) = 'array'::text))`],
  },
  {
    table: 'user_roles',
    bullet: 'Supports hierarchical permission inheritance',
    columns: { 'roles.parent_role': 'text' },
    constraints: [
      'roles: FOREIGN KEY (parent_role) REFERENCES roles(name) ON DELETE RESTRICT',
      'roles: CHECK (((parent_role IS NULL) OR (parent_role <> name)))',
    ],
    // walks parent_role recursively
    functions: ['auth.has_permission(text)'],
  },

  // --- users
  {
    table: 'users',
    bullet: 'Complete user management with security features',
    columns: {
      'users.username': 'text',
      'users.email': 'text',
      'users.full_name': 'text',
      'users.password_hash': 'text',
      'users.is_active': 'bool',
      'users.last_login_at': 'timestamptz',
      'users.last_login_ip': 'inet',
    },
    indexes: {
      'users.idx_users_username': 'UNIQUE btree (lower(username)) WHERE (deleted_at IS NULL)',
      'users.idx_users_email': 'UNIQUE btree (lower(email)) WHERE (deleted_at IS NULL)',
    },
  },
  {
    table: 'users',
    bullet: 'Multi-factor authentication support',
    columns: { 'users.mfa_enabled': 'bool', 'users.mfa_secret_encrypted': 'bytea' },
  },
  {
    table: 'users',
    bullet: 'Account lockout and password policies',
    columns: {
      'users.failed_login_attempts': 'int4',
      'users.locked_until': 'timestamptz',
      'users.password_changed_at': 'timestamptz',
      'users.must_change_password': 'bool',
    },
    constraints: ['users: CHECK ((failed_login_attempts >= 0))'],
  },
  {
    table: 'users',
    bullet: 'API key management with expiration',
    columns: {
      'users.api_key_hash': 'text',
      'users.api_key_expires_at': 'timestamptz',
      // several keys per user, revocable, with their own lockout (migration Security1735689600004)
      'api_keys.user_id': 'uuid',
      'api_keys.key_hash': 'text',
      'api_keys.expires_at': 'timestamptz',
      'api_keys.revoked_at': 'timestamptz',
      'api_keys.locked_until': 'timestamptz',
    },
    constraints: ['api_keys: CHECK (((expires_at IS NULL) OR (expires_at > created_at)))'],
    indexes: {
      'users.idx_users_api_key_hash': 'UNIQUE btree (api_key_hash) WHERE (api_key_hash IS NOT NULL)',
    },
  },
  {
    table: 'users',
    bullet: 'Soft delete capability for compliance',
    columns: { 'users.deleted_at': 'timestamptz' },
    // the unique name/email indexes are partial (WHERE deleted_at IS NULL), so a deleted user's name can be reused
    indexes: {
      'users.idx_users_username': 'UNIQUE btree (lower(username)) WHERE (deleted_at IS NULL)',
      'users.idx_users_email': 'UNIQUE btree (lower(email)) WHERE (deleted_at IS NULL)',
    },
  },

  // --- user_sessions
  {
    table: 'user_sessions',
    bullet: 'Session tracking for security and audit',
    columns: {
      'user_sessions.user_id': 'uuid',
      'user_sessions.session_token_hash': 'text',
      'user_sessions.created_at': 'timestamptz',
      'user_sessions.last_activity_at': 'timestamptz',
    },
    constraints: [
      'user_sessions: FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE',
      'user_sessions: UNIQUE (session_token_hash)',
    ],
    indexes: {
      'user_sessions.idx_user_sessions_user_active': 'btree (user_id, is_active)',
    },
  },
  {
    table: 'user_sessions',
    bullet: 'Device fingerprinting and IP tracking',
    columns: { 'user_sessions.device_fingerprint': 'text', 'user_sessions.ip_address': 'inet', 'user_sessions.user_agent': 'text' },
  },
  {
    table: 'user_sessions',
    bullet: 'Automatic session expiration and revocation',
    // Expiry needs no sweeper: expires_at is mandatory and a session past it is not live to any reader
    // (nor to the concurrent-session limit below).
    columns: {
      'user_sessions.expires_at': 'timestamptz',
      'user_sessions.is_active': 'bool',
      'user_sessions.revoked_at': 'timestamptz',
      'user_sessions.revoked_reason': 'text',
    },
    constraints: ['user_sessions: CHECK ((expires_at > created_at))'],
    indexes: {
      'user_sessions.idx_user_sessions_expires': 'btree (expires_at) WHERE is_active',
    },
  },
  {
    table: 'user_sessions',
    bullet: 'Concurrent session limiting',
    columns: { 'users.max_concurrent_sessions': 'int4' },
    constraints: ['users: CHECK ((max_concurrent_sessions > 0))'],
    triggers: ['user_sessions.user_sessions_enforce_limit', 'user_sessions.user_sessions_enforce_limit_on_revive'],
    functions: ['user_sessions_enforce_limit()'],
  },

  // --- mcp_servers
  {
    table: 'mcp_servers',
    bullet: 'Enhanced server configuration with security controls',
    columns: {
      'mcp_servers.config': 'jsonb',
      'mcp_servers.transport': 'text',
      'mcp_servers.endpoint_url': 'text',
      'mcp_servers.command': 'text',
      'mcp_servers.is_enabled': 'bool',
    },
    constraints: [`mcp_servers: CHECK ((transport = ANY (ARRAY['stdio'::text, 'sse'::text, 'streamable_http'::text, 'websocket'::text])))`],
  },
  {
    table: 'mcp_servers',
    bullet: 'Resource usage monitoring (CPU, memory)',
    columns: {
      'mcp_servers.cpu_usage': 'numeric',
      'mcp_servers.memory_usage': 'numeric',
      'mcp_servers.cpu_limit': 'numeric',
      'mcp_servers.memory_limit_mb': 'int4',
    },
    constraints: [
      'mcp_servers: CHECK (((cpu_usage IS NULL) OR (cpu_usage >= (0)::numeric)))',
      'mcp_servers: CHECK (((memory_usage IS NULL) OR (memory_usage >= (0)::numeric)))',
    ],
  },
  {
    table: 'mcp_servers',
    bullet: 'Health check and restart policies',
    columns: {
      'mcp_servers.health': 'text',
      'mcp_servers.last_health_check': 'timestamptz',
      'mcp_servers.health_check_interval_seconds': 'int4',
      'mcp_servers.health_check_timeout_seconds': 'int4',
      'mcp_servers.stale_after_seconds': 'int4',
      'mcp_servers.restart_policy': 'text',
      'mcp_servers.max_restarts': 'int4',
      'mcp_servers.restart_count': 'int4',
    },
    constraints: [`mcp_servers: CHECK ((restart_policy = ANY (ARRAY['never'::text, 'on-failure'::text, 'always'::text])))`],
    indexes: {
      'mcp_servers.idx_mcp_servers_health_check': 'btree (last_health_check, status)',
    },
  },
  {
    table: 'mcp_servers',
    bullet: 'Owner-based access control',
    columns: { 'mcp_servers.owner_id': 'uuid' },
    constraints: ['mcp_servers: FOREIGN KEY (owner_id) REFERENCES users(id) ON DELETE SET NULL'],
    indexes: {
      'mcp_servers.idx_mcp_servers_owner_status': 'btree (owner_id, status)',
    },
    // grants beyond ownership: access_controls, read by the status-log policy
    functions: ['auth.active_grant(text,uuid)'],
  },
  {
    table: 'mcp_servers',
    bullet: 'Security policy association',
    columns: { 'mcp_servers.security_policy_id': 'uuid' },
    constraints: ['mcp_servers: FOREIGN KEY (security_policy_id) REFERENCES security_policies(id) ON DELETE SET NULL'],
  },

  // --- environments
  {
    table: 'environments',
    bullet: 'Multi-environment deployment support',
    columns: { 'environments.name': 'text', 'environments.environment_type': 'text', 'mcp_servers.environment_id': 'uuid' },
    constraints: [
      'environments: UNIQUE (name)',
      'mcp_servers: FOREIGN KEY (environment_id) REFERENCES environments(id) ON DELETE SET NULL',
    ],
  },
  {
    table: 'environments',
    bullet: 'Environment-specific configurations and limits',
    columns: { 'environments.config': 'jsonb', 'environments.resource_limits': 'jsonb', 'configurations.environment_id': 'uuid' },
  },
  {
    table: 'environments',
    bullet: 'Maintenance window management',
    // status-sync does not mark a server stale during its environment's window
    columns: { 'environments.maintenance_window_start': 'timestamptz', 'environments.maintenance_window_end': 'timestamptz' },
    constraints: [
      'environments: CHECK (((maintenance_window_end IS NULL) OR (maintenance_window_start IS NULL) OR (maintenance_window_end > maintenance_window_start)))',
    ],
  },
  {
    table: 'environments',
    bullet: 'Deployment tracking and rollback capability',
    columns: {
      'environments.current_deployment_version': 'text',
      'environments.previous_deployment_version': 'text',
      'environments.last_deployed_at': 'timestamptz',
    },
  },

  // --- configurations
  {
    table: 'configurations',
    bullet: 'Versioned configuration management',
    columns: { 'configurations.key': 'text', 'configurations.value': 'jsonb', 'configurations.version': 'int4' },
    constraints: ['configurations: CHECK ((version > 0))'],
  },
  {
    table: 'configurations',
    bullet: 'Environment and server-specific settings',
    columns: { 'configurations.scope': 'text', 'configurations.environment_id': 'uuid', 'configurations.mcp_server_id': 'uuid' },
    constraints: [
      `configurations: CHECK (((scope = 'SERVER'::text) = (mcp_server_id IS NOT NULL)))`,
      `configurations: CHECK (((scope = 'ENVIRONMENT'::text) = (environment_id IS NOT NULL)))`,
    ],
    indexes: {
      'configurations.idx_config_unique_server_key': `UNIQUE btree (mcp_server_id, key, status) WHERE ((mcp_server_id IS NOT NULL) AND (status = 'ACTIVE'::text))`,
      'configurations.idx_config_unique_environment_key': `UNIQUE btree (environment_id, key) WHERE ((environment_id IS NOT NULL) AND (status = 'ACTIVE'::text))`,
      'configurations.idx_config_unique_global_key': `UNIQUE btree (key) WHERE ((scope = 'GLOBAL'::text) AND (status = 'ACTIVE'::text))`,
    },
  },
  {
    table: 'configurations',
    bullet: 'Approval workflow for sensitive changes',
    columns: {
      'configurations.requires_approval': 'bool',
      'configurations.status': 'text',
      'configurations.approved_by': 'uuid',
      'configurations.approved_at': 'timestamptz',
    },
    constraints: [
      `configurations: CHECK ((status = ANY (ARRAY['DRAFT'::text, 'PENDING_APPROVAL'::text, 'ACTIVE'::text, 'ARCHIVED'::text])))`,
    ],
  },
  {
    table: 'configurations',
    bullet: 'Schema validation and constraints',
    // The JSON Schema a value must satisfy; no service writes configurations yet (docs/schema.md,
    // "Who owns what"), so validating against it is the future owner's job.
    columns: { 'configurations.validation_schema': 'jsonb' },
  },
  {
    table: 'configurations',
    bullet: 'Encrypted storage for secrets',
    columns: { 'configurations.is_secret': 'bool', 'configurations.encrypted_value': 'bytea' },
    constraints: ['configurations: CHECK (((NOT is_secret) OR ((value IS NULL) AND (encrypted_value IS NOT NULL))))'],
  },

  // --- configuration_history
  {
    table: 'configuration_history',
    bullet: 'Complete audit trail of configuration changes',
    columns: {
      'configuration_history.configuration_id': 'uuid',
      'configuration_history.change_type': 'text',
      'configuration_history.old_value': 'jsonb',
      'configuration_history.new_value': 'jsonb',
      'configuration_history.changed_by': 'uuid',
      'configuration_history.changed_at': 'timestamptz',
    },
    constraints: ['configuration_history: FOREIGN KEY (configuration_id) REFERENCES configurations(id) ON DELETE CASCADE'],
    indexes: {
      'configuration_history.idx_configuration_history_config_changed': 'btree (configuration_id, changed_at)',
    },
  },
  {
    table: 'configuration_history',
    bullet: 'Change reason tracking and approval records',
    columns: {
      'configuration_history.change_reason': 'text',
      'configuration_history.approved_by': 'uuid',
      'configuration_history.approved_at': 'timestamptz',
    },
  },
  {
    table: 'configuration_history',
    bullet: 'Rollback capability with version management',
    columns: { 'configuration_history.version': 'int4', 'configuration_history.rolled_back_from_version': 'int4' },
    constraints: [
      `configuration_history: CHECK ((change_type = ANY (ARRAY['CREATE'::text, 'UPDATE'::text, 'APPROVE'::text, 'ROLLBACK'::text, 'ARCHIVE'::text])))`,
      'configuration_history: UNIQUE (configuration_id, version, change_type)',
    ],
  },

  // --- security_policies
  {
    table: 'security_policies',
    bullet: 'Comprehensive security policy definitions',
    columns: {
      'security_policies.name': 'text',
      'security_policies.description': 'text',
      'security_policies.policy_type': 'text',
      'security_policies.is_active': 'bool',
    },
    constraints: ['security_policies: UNIQUE (name)'],
  },
  {
    table: 'security_policies',
    bullet: 'Network, authentication, and resource restrictions',
    columns: {
      'security_policies.network_rules': 'jsonb',
      'security_policies.authentication_rules': 'jsonb',
      'security_policies.resource_restrictions': 'jsonb',
    },
  },
  {
    table: 'security_policies',
    bullet: 'Threat detection and response configuration',
    columns: { 'security_policies.threat_detection': 'jsonb', 'security_policies.response_actions': 'jsonb' },
  },
  {
    table: 'security_policies',
    bullet: 'Policy inheritance and priority management',
    columns: { 'security_policies.parent_policy_id': 'uuid', 'security_policies.priority': 'int4' },
    constraints: ['security_policies: FOREIGN KEY (parent_policy_id) REFERENCES security_policies(id) ON DELETE SET NULL'],
    indexes: {
      'security_policies.idx_security_policies_active_priority': 'btree (is_active, priority)',
    },
  },

  // --- access_controls
  {
    table: 'access_controls',
    bullet: 'Fine-grained resource access permissions',
    columns: {
      'access_controls.user_id': 'uuid',
      'access_controls.resource_type': 'text',
      'access_controls.resource_id': 'uuid',
      'access_controls.mcp_server_id': 'uuid',
      'access_controls.permissions': 'jsonb',
    },
    constraints: [`access_controls: CHECK ((jsonb_typeof(permissions) = 'array'::text))`],
    indexes: {
      'access_controls.idx_access_controls_user_server': 'btree (user_id, mcp_server_id)',
      'access_controls.idx_access_controls_resource': 'btree (resource_type, resource_id)',
    },
  },
  {
    table: 'access_controls',
    bullet: 'Time-based and conditional access rules',
    columns: { 'access_controls.valid_from': 'timestamptz', 'access_controls.valid_until': 'timestamptz', 'access_controls.conditions': 'jsonb' },
    constraints: ['access_controls: CHECK (((valid_until IS NULL) OR (valid_until > valid_from)))'],
    // row-level security honours a grant only inside [valid_from, valid_until) and until revoked
    functions: ['auth.active_grant(text,uuid)'],
  },
  {
    table: 'access_controls',
    bullet: 'Usage tracking and quota management',
    columns: { 'access_controls.usage_quota': 'int4', 'access_controls.usage_count': 'int4', 'access_controls.last_used_at': 'timestamptz' },
    constraints: ['access_controls: CHECK (((usage_quota IS NULL) OR (usage_quota >= 0)))', 'access_controls: CHECK ((usage_count >= 0))'],
  },
  {
    table: 'access_controls',
    bullet: 'Audit trail for access grants/revocations',
    // A revocation sets revoked_* and keeps the row, so who granted and who revoked what, when and why stays
    // on record. No gRPC API grants or revokes yet; the one that does records each change in audit_logs
    // with recordAudit() (packages/runtime/src/audit-trail.ts) in the same transaction.
    columns: {
      'access_controls.granted_by': 'uuid',
      'access_controls.granted_at': 'timestamptz',
      'access_controls.revoked_by': 'uuid',
      'access_controls.revoked_at': 'timestamptz',
      'access_controls.reason': 'text',
    },
  },

  // --- rate_limits
  {
    table: 'rate_limits',
    bullet: 'Multi-dimensional rate limiting (user, IP, endpoint)',
    columns: { 'rate_limits.scope': 'text', 'rate_limits.user_id': 'uuid', 'rate_limits.ip_address': 'inet', 'rate_limits.endpoint': 'text' },
    constraints: [
      `rate_limits: CHECK ((scope = ANY (ARRAY['GLOBAL'::text, 'USER'::text, 'IP'::text, 'ENDPOINT'::text, 'USER_ENDPOINT'::text])))`,
      `rate_limits: CHECK (((scope <> 'USER'::text) OR (user_id IS NOT NULL)))`,
      `rate_limits: CHECK (((scope <> 'IP'::text) OR (ip_address IS NOT NULL)))`,
      `rate_limits: CHECK (((scope <> 'ENDPOINT'::text) OR (endpoint IS NOT NULL)))`,
    ],
    indexes: {
      'rate_limits.idx_rate_limits_lookup': 'btree (scope, user_id, endpoint) WHERE is_active',
      'rate_limits.idx_rate_limits_ip_block': `UNIQUE btree (ip_address) WHERE ((scope = 'IP'::text) AND (endpoint IS NULL))`,
    },
  },
  {
    table: 'rate_limits',
    bullet: 'Sliding window implementation',
    // The weighted two-window estimate is RateLimiter (packages/runtime/src/auth/rate-limiter.ts), counting in
    // rate_limit_windows; rate_limits holds the configured limits.
    columns: {
      'rate_limits.window_seconds': 'int4',
      'rate_limits.window_start': 'timestamptz',
      'rate_limit_windows.bucket': 'text',
      'rate_limit_windows.window_start': 'timestamptz',
      'rate_limit_windows.hits': 'int4',
    },
    constraints: ['rate_limit_windows: PRIMARY KEY (bucket, window_start)'],
  },
  {
    table: 'rate_limits',
    bullet: 'Policy-based limit configuration',
    columns: {
      'rate_limits.security_policy_id': 'uuid',
      'rate_limits.requests_limit': 'int4',
      'rate_limits.block_on_exceed': 'bool',
      'rate_limits.block_duration_seconds': 'int4',
    },
    constraints: [
      'rate_limits: FOREIGN KEY (security_policy_id) REFERENCES security_policies(id) ON DELETE SET NULL',
      'rate_limits: CHECK ((requests_limit > 0))',
    ],
  },
  {
    table: 'rate_limits',
    bullet: 'Real-time quota tracking',
    columns: { 'rate_limits.current_count': 'int4', 'rate_limits.blocked_until': 'timestamptz', 'rate_limit_windows.hits': 'int4' },
    constraints: ['rate_limits: CHECK ((current_count >= 0))'],
  },

  // --- audit_logs
  {
    table: 'audit_logs',
    bullet: 'Comprehensive activity logging',
    columns: {
      'audit_logs.created_at': 'timestamptz',
      'audit_logs.user_id': 'uuid',
      'audit_logs.action_type': 'text',
      'audit_logs.resource_type': 'text',
      'audit_logs.resource_id': 'text',
      'audit_logs.mcp_server_id': 'uuid',
      'audit_logs.success': 'bool',
      'audit_logs.ip_address': 'inet',
      'audit_logs.session_id': 'text',
    },
  },
  {
    table: 'audit_logs',
    bullet: 'Request/response data capture (sanitized)',
    // Sanitising is the audit service's: its Redactor (packages/runtime/src/redaction.ts) masks secrets before insert.
    columns: { 'audit_logs.request_data': 'jsonb', 'audit_logs.response_data': 'jsonb', 'audit_logs.error_message': 'text' },
  },
  {
    table: 'audit_logs',
    bullet: 'Performance metrics (duration, status codes)',
    columns: { 'audit_logs.duration_ms': 'int4', 'audit_logs.status_code': 'int4' },
    constraints: ['audit_logs: CHECK ((duration_ms >= 0))'],
  },
  {
    table: 'audit_logs',
    bullet: 'Multi-dimensional indexing for fast queries',
    columns: {},
    indexes: {
      'audit_logs.idx_audit_logs_created_action': 'btree (created_at, action_type)',
      'audit_logs.idx_audit_logs_user_created': 'btree (user_id, created_at)',
      'audit_logs.idx_audit_logs_resource': 'btree (resource_type, resource_id, created_at)',
      'audit_logs.idx_audit_logs_server_created': 'btree (mcp_server_id, created_at) WHERE (mcp_server_id IS NOT NULL)',
      'audit_logs.idx_audit_logs_failures': 'btree (action_type, created_at) WHERE (success = false)',
      'audit_logs.idx_audit_logs_description_fts': `gin (to_tsvector('english'::regconfig, description))`,
    },
  },

  // --- security_events
  {
    table: 'security_events',
    bullet: 'Security-specific event tracking',
    columns: {
      'security_events.occurred_at': 'timestamptz',
      'security_events.event_type': 'text',
      'security_events.severity': 'text',
      'security_events.source_service': 'text',
      'security_events.user_id': 'uuid',
    },
    constraints: [`security_events: CHECK ((severity = ANY (ARRAY['LOW'::text, 'MEDIUM'::text, 'HIGH'::text, 'CRITICAL'::text])))`],
    indexes: {
      'security_events.idx_security_events_occurred_severity': 'btree (occurred_at, severity)',
      'security_events.idx_security_events_type_occurred': 'btree (event_type, occurred_at)',
    },
  },
  {
    table: 'security_events',
    bullet: 'Threat scoring and indicator management',
    columns: { 'security_events.threat_score': 'numeric', 'security_events.indicators': 'jsonb' },
    constraints: ['security_events: CHECK (((threat_score >= (0)::numeric) AND (threat_score <= (100)::numeric)))'],
    indexes: {
      'security_events.idx_security_events_indicators': 'gin (indicators jsonb_path_ops)',
    },
  },
  {
    table: 'security_events',
    bullet: 'Incident response workflow',
    columns: {
      'security_events.status': 'text',
      'security_events.assigned_to': 'uuid',
      'security_events.assigned_at': 'timestamptz',
      'security_events.notes': 'jsonb',
      'security_events.resolved': 'bool',
      'security_events.resolved_at': 'timestamptz',
      'security_events.resolved_by': 'uuid',
      'security_events.resolution_notes': 'text',
    },
    constraints: [
      `security_events: CHECK ((status = ANY (ARRAY['OPEN'::text, 'INVESTIGATING'::text, 'RESOLVED'::text, 'FALSE_POSITIVE'::text])))`,
      `security_events: CHECK ((resolved = (status = ANY (ARRAY['RESOLVED'::text, 'FALSE_POSITIVE'::text]))))`,
      'security_events: CHECK (((NOT resolved) OR (resolved_at IS NOT NULL)))',
    ],
    indexes: {
      'security_events.idx_security_events_critical_unresolved': `btree (occurred_at, event_type) WHERE ((severity = ANY (ARRAY['HIGH'::text, 'CRITICAL'::text])) AND (resolved = false))`,
    },
  },
  {
    table: 'security_events',
    bullet: 'Geographic and behavioral analytics',
    columns: {
      'security_events.ip_address': 'inet',
      'security_events.country_code': 'text',
      'security_events.city': 'text',
      'security_events.behavior_signals': 'jsonb',
      'security_events.user_agent': 'text',
    },
    constraints: [`security_events: CHECK ((country_code ~ '^[A-Z]{2}$'::text))`],
    indexes: {
      'security_events.idx_security_events_ip_occurred': 'btree (ip_address, occurred_at)',
    },
  },

  // --- audit_logs_archive
  {
    table: 'audit_logs_archive',
    bullet: 'Long-term compliance storage',
    columns: {
      'audit_logs_archive.original_audit_log_id': 'uuid',
      'audit_logs_archive.audit_data': 'json',
      'audit_logs_archive.archive_reason': 'text',
      'audit_logs_archive.archived_at': 'timestamptz',
    },
    constraints: ['audit_logs_archive: UNIQUE (original_audit_log_id)'],
  },
  {
    table: 'audit_logs_archive',
    bullet: 'Data integrity verification (checksums)',
    columns: { 'audit_logs_archive.checksum': 'text' },
    constraints: [`audit_logs_archive: CHECK ((checksum ~ '^[0-9a-f]{64}$'::text))`],
  },
  {
    table: 'audit_logs_archive',
    bullet: 'Legal hold and retention management',
    columns: {
      'audit_logs_archive.legal_hold': 'bool',
      'audit_logs_archive.legal_hold_reason': 'text',
      'audit_logs_archive.retention_until': 'timestamptz',
    },
    indexes: {
      'audit_logs_archive.idx_audit_logs_archive_retention': 'btree (retention_until) WHERE (legal_hold = false)',
    },
  },
  {
    table: 'audit_logs_archive',
    bullet: 'Compressed historical data',
    // audit_data is stored EXTENDED: PostgreSQL compresses (TOAST) every value too large to sit inline.
    // Checked below with pg_attribute.attstorage, as no constraint can express it.
    columns: { 'audit_logs_archive.audit_data': 'json' },
  },
];

/** The 13 tables of seed 004's "Database Tables" section, in its order. */
const SEED_004_TABLES = [
  'user_roles',
  'users',
  'user_sessions',
  'mcp_servers',
  'environments',
  'configurations',
  'configuration_history',
  'security_policies',
  'access_controls',
  'rate_limits',
  'audit_logs',
  'security_events',
  'audit_logs_archive',
];

let db: TestDatabase;
let c: Client;

beforeAll(async () => {
  db = await freshDatabase();
  c = await connect(db.url);
});

afterAll(async () => {
  await c?.end();
  await db?.drop();
});

describe("seed 004's table descriptions, bullet by bullet", () => {
  it('covers every table the seed describes, in its order, each bullet once', () => {
    expect([...new Set(BULLETS.map((b) => b.table))]).toEqual(SEED_004_TABLES);
    const keys = BULLETS.map((b) => `${b.table}: ${b.bullet}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it.each(BULLETS)('$table — $bullet', async (b) => {
    for (const [qualified, udt] of Object.entries(b.columns)) {
      const [table, column] = qualified.split('.');
      const found = await rows<{ udt_name: string }>(
        c,
        `SELECT udt_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2`,
        [table, column],
      );
      expect(found.map((r) => r.udt_name), qualified).toEqual([udt]);
    }
    for (const constraint of b.constraints ?? []) {
      const [table, definition] = constraint.split(/: (.*)/s);
      const defs = await rows<{ def: string }>(
        c,
        `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = to_regclass($1)`,
        [`public.${table}`],
      );
      expect(defs.map((r) => r.def), constraint).toContain(definition);
    }
    for (const [qualified, definition] of Object.entries(b.indexes ?? {})) {
      const [table, index] = qualified.split('.');
      const found = await rows<{ def: string }>(
        c,
        `SELECT CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || substring(pg_get_indexdef(i.indexrelid) FROM ' USING (.*)$') AS def
           FROM pg_index i WHERE i.indexrelid = to_regclass($1) AND i.indrelid = to_regclass($2)`,
        [`public.${index}`, `public.${table}`],
      );
      expect(found.map((r) => r.def), qualified).toEqual([definition]);
    }
    for (const qualified of b.triggers ?? []) {
      const [table, trigger] = qualified.split('.');
      expect(
        await scalar(c, `SELECT count(*)::int FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2 AND tgenabled <> 'D'`, [`public.${table}`, trigger]),
        qualified,
      ).toBe(1);
    }
    for (const fn of b.functions ?? []) {
      expect(await scalar(c, 'SELECT to_regprocedure($1) IS NOT NULL', [fn]), fn).toBe(true);
    }
  });

  it('audit_logs_archive.audit_data is compressible (storage EXTENDED)', async () => {
    expect(
      await scalar(c, `SELECT attstorage::text FROM pg_attribute WHERE attrelid = 'public.audit_logs_archive'::regclass AND attname = 'audit_data'`),
    ).toBe('x');
  });
});

// ---------------------------------------------------------------------------
// Concurrent session limiting (migration ConcurrentSessionLimit1735689600009).

interface SessionFields {
  isActive?: boolean;
  revokedAt?: Date | null;
  createdAt?: Date;
  expiresAt?: Date;
}

async function insertSession(client: Client, userId: string, f: SessionFields = {}): Promise<string> {
  return scalar<string>(
    client,
    `INSERT INTO user_sessions (user_id, session_token_hash, is_active, revoked_at, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
    [
      userId,
      randomBytes(32).toString('hex'),
      f.isActive ?? true,
      f.revokedAt ?? null,
      f.createdAt ?? new Date(),
      f.expiresAt ?? new Date(Date.now() + HOUR),
    ],
  );
}

async function userWithLimit(username: string, limit: number | null): Promise<string> {
  const id = await insertUser(c, username);
  await c.query('UPDATE users SET max_concurrent_sessions = $2 WHERE id = $1', [id, limit]);
  return id;
}

async function expectLimitRefusal(work: Promise<unknown>, limit: number): Promise<void> {
  const err = await pgError(work);
  expect(err.code).toBe('23514');
  expect(err.constraint).toBe('user_sessions_concurrent_limit');
  expect(err.message).toContain(`already has ${limit} active sessions`);
  expect(err.message).toContain(`users.max_concurrent_sessions (${limit})`);
}

describe('concurrent session limiting (users.max_concurrent_sessions)', () => {
  it('admits sessions up to the limit and refuses the next with check_violation', async () => {
    const userId = await userWithLimit('limited', 2);
    await insertSession(c, userId);
    await insertSession(c, userId);
    await expectLimitRefusal(insertSession(c, userId), 2);
    expect(await scalar(c, 'SELECT count(*)::int FROM user_sessions WHERE user_id = $1', [userId])).toBe(2);
  });

  it('is unlimited when max_concurrent_sessions is NULL', async () => {
    const userId = await userWithLimit('unlimited', null);
    for (let i = 0; i < 5; i++) await insertSession(c, userId);
    expect(await scalar(c, 'SELECT count(*)::int FROM user_sessions WHERE user_id = $1', [userId])).toBe(5);
  });

  it('counts only live sessions: inactive, revoked and expired ones leave room', async () => {
    const userId = await userWithLimit('returning', 1);
    await insertSession(c, userId, { isActive: false });
    await insertSession(c, userId, { revokedAt: new Date() });
    await insertSession(c, userId, { createdAt: new Date(Date.now() - 3 * HOUR), expiresAt: new Date(Date.now() - HOUR) });
    await insertSession(c, userId);
    await expectLimitRefusal(insertSession(c, userId), 1);
    // a session that is not live is recorded even at the limit
    await insertSession(c, userId, { isActive: false });
  });

  it('counts each user separately', async () => {
    const first = await userWithLimit('first_of_two', 1);
    const second = await userWithLimit('second_of_two', 1);
    await insertSession(c, first);
    await insertSession(c, second);
    await expectLimitRefusal(insertSession(c, first), 1);
  });

  it('refuses reviving a session beyond the limit; touching a live session is fine', async () => {
    const userId = await userWithLimit('reviver', 1);
    const live = await insertSession(c, userId);
    const ended = await insertSession(c, userId, { isActive: false });
    await expectLimitRefusal(c.query('UPDATE user_sessions SET is_active = true WHERE id = $1', [ended]), 1);
    await c.query(`UPDATE user_sessions SET last_activity_at = now(), expires_at = expires_at + interval '1 hour' WHERE id = $1`, [live]);
    await c.query('UPDATE user_sessions SET is_active = false, revoked_at = now() WHERE id = $1', [live]);
    await c.query('UPDATE user_sessions SET is_active = true WHERE id = $1', [ended]);
  });

  it('rejects a limit below 1', async () => {
    const userId = await insertUser(c, 'zero_limit');
    const err = await pgError(c.query('UPDATE users SET max_concurrent_sessions = 0 WHERE id = $1', [userId]));
    expect(err.code).toBe('23514');
    expect(err.constraint).toBe('users_max_concurrent_sessions_check');
  });

  describe('two sessions created at once for one user', () => {
    let a: Client;
    let b: Client;
    beforeAll(async () => {
      a = await connect(db.url);
      b = await connect(db.url);
    });
    afterAll(async () => {
      await a?.end();
      await b?.end();
    });

    it('the second waits for the first to commit, then is refused', async () => {
      const userId = await userWithLimit('racer', 1);
      const bPid = await scalar<number>(b, 'SELECT pg_backend_pid()');
      await a.query('BEGIN');
      await insertSession(a, userId);
      await b.query('BEGIN');
      const second = insertSession(b, userId);
      const refusal = expectLimitRefusal(second, 1);
      await waitUntilBlocked(bPid);
      await a.query('COMMIT');
      await refusal;
      await b.query('ROLLBACK');
      expect(await scalar(c, 'SELECT count(*)::int FROM user_sessions WHERE user_id = $1', [userId])).toBe(1);
    });
  });
});

/** Waits until backend `pid` waits on a lock (here: the user's row, held by the first session's transaction). */
async function waitUntilBlocked(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await scalar<boolean>(c, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock')`, [pid])) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`backend ${pid} never waited on a lock`);
}
