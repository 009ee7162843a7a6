import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * The tables this service owns (and mcp_servers, whose current-state columns
 * it owns and whose registry fields it writes). Every column has an explicit
 * `type`: the test runner's compiler emits no decorator metadata, and the
 * drift check compares these types with the migrated schema.
 */

@Entity({ name: 'environments' })
export class EnvironmentEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'text' }) name!: string;
  @Column({ type: 'text', nullable: true }) description!: string | null;
  @Column({ type: 'text', name: 'environment_type' }) environmentType!: string;
  @Column({ type: 'jsonb' }) config!: unknown;
  @Column({ type: 'jsonb', name: 'resource_limits' }) resourceLimits!: unknown;
  @Column({ type: 'timestamptz', name: 'maintenance_window_start', nullable: true }) maintenanceWindowStart!: Date | null;
  @Column({ type: 'timestamptz', name: 'maintenance_window_end', nullable: true }) maintenanceWindowEnd!: Date | null;
  @Column({ type: 'text', name: 'current_deployment_version', nullable: true }) currentDeploymentVersion!: string | null;
  @Column({ type: 'text', name: 'previous_deployment_version', nullable: true }) previousDeploymentVersion!: string | null;
  @Column({ type: 'timestamptz', name: 'last_deployed_at', nullable: true }) lastDeployedAt!: Date | null;
  @Column({ type: 'boolean', name: 'is_active' }) isActive!: boolean;
  @Column({ type: 'timestamptz', name: 'created_at' }) createdAt!: Date;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt!: Date;
}

@Entity({ name: 'mcp_servers' })
export class McpServerEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'text' }) name!: string;
  @Column({ type: 'text', nullable: true }) description!: string | null;
  @Column({ type: 'uuid', name: 'owner_id', nullable: true }) ownerId!: string | null;
  @Column({ type: 'uuid', name: 'environment_id', nullable: true }) environmentId!: string | null;
  @Column({ type: 'uuid', name: 'security_policy_id', nullable: true }) securityPolicyId!: string | null;
  @Column({ type: 'text' }) transport!: string;
  @Column({ type: 'text', name: 'endpoint_url', nullable: true }) endpointUrl!: string | null;
  @Column({ type: 'text', nullable: true }) command!: string | null;
  @Column({ type: 'jsonb' }) config!: unknown;
  @Column({ type: 'text' }) status!: string;
  @Column({ type: 'text' }) health!: string;
  @Column({ type: 'boolean', name: 'is_enabled' }) isEnabled!: boolean;
  @Column({ type: 'numeric', name: 'cpu_usage', nullable: true }) cpuUsage!: string | null;
  @Column({ type: 'numeric', name: 'memory_usage', nullable: true }) memoryUsage!: string | null;
  @Column({ type: 'numeric', name: 'cpu_limit', nullable: true }) cpuLimit!: string | null;
  @Column({ type: 'integer', name: 'memory_limit_mb', nullable: true }) memoryLimitMb!: number | null;
  @Column({ type: 'integer', name: 'health_check_interval_seconds' }) healthCheckIntervalSeconds!: number;
  @Column({ type: 'integer', name: 'health_check_timeout_seconds' }) healthCheckTimeoutSeconds!: number;
  @Column({ type: 'integer', name: 'stale_after_seconds' }) staleAfterSeconds!: number;
  @Column({ type: 'text', name: 'restart_policy' }) restartPolicy!: string;
  @Column({ type: 'integer', name: 'max_restarts' }) maxRestarts!: number;
  @Column({ type: 'integer', name: 'restart_count' }) restartCount!: number;
  @Column({ type: 'jsonb', name: 'current_status' }) currentStatus!: unknown;
  @Column({ type: 'timestamptz', name: 'last_health_check', nullable: true }) lastHealthCheck!: Date | null;
  @Column({ type: 'timestamptz', name: 'last_heartbeat_at', nullable: true }) lastHeartbeatAt!: Date | null;
  @Column({ type: 'timestamptz', name: 'last_activity_at', nullable: true }) lastActivityAt!: Date | null;
  @Column({ type: 'timestamptz', name: 'created_at' }) createdAt!: Date;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt!: Date;
  @Column({ type: 'timestamptz', name: 'stale_since', nullable: true }) staleSince!: Date | null;
  @Column({ type: 'timestamptz', name: 'last_status_log_at', nullable: true }) lastStatusLogAt!: Date | null;
}

/** Columns shared by mcp_server_status_logs and its archive (LIKE … INCLUDING ALL). */
abstract class StatusLogColumns {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  /** Partition key, hence part of the primary key. */
  @PrimaryColumn({ type: 'timestamptz' }) timestamp!: Date;
  @Column({ type: 'uuid', name: 'server_id' }) serverId!: string;
  @Column({ type: 'jsonb', name: 'previous_status', nullable: true }) previousStatus!: unknown;
  @Column({ type: 'jsonb', name: 'current_status', nullable: true }) currentStatus!: unknown;
  @Column({ type: 'text' }) source!: string;
  @Column({ type: 'text', nullable: true }) details!: string | null;
  @Column({ type: 'jsonb', name: 'health_check_result', nullable: true }) healthCheckResult!: unknown;
  @Column({ type: 'jsonb', name: 'heartbeat_data', nullable: true }) heartbeatData!: unknown;
  @Column({ type: 'integer', name: 'response_time_ms', nullable: true }) responseTimeMs!: number | null;
  @Column({ type: 'bigint', name: 'uptime_seconds', nullable: true }) uptimeSeconds!: string | null;
  @Column({ type: 'uuid', name: 'created_by', nullable: true }) createdBy!: string | null;
  @Column({ type: 'uuid', name: 'sync_session_id', nullable: true }) syncSessionId!: string | null;
  @Column({ type: 'uuid', name: 'batch_id', nullable: true }) batchId!: string | null;
  @Column({ type: 'bigint', name: 'ingest_xid' }) ingestXid!: string;
}

@Entity({ name: 'mcp_server_status_logs', synchronize: false })
export class StatusLogEntity extends StatusLogColumns {}

@Entity({ name: 'mcp_server_status_logs_archive', synchronize: false })
export class StatusLogArchiveEntity extends StatusLogColumns {}

@Entity({ name: 'mcp_server_status_report_keys' })
export class StatusReportKeyEntity {
  @PrimaryColumn({ type: 'uuid', name: 'idempotency_key' }) idempotencyKey!: string;
  @PrimaryColumn({ type: 'uuid', name: 'server_id' }) serverId!: string;
  @Column({ type: 'uuid', name: 'log_id' }) logId!: string;
  @Column({ type: 'timestamptz', name: 'log_timestamp' }) logTimestamp!: Date;
  @Column({ type: 'timestamptz', name: 'received_at' }) receivedAt!: Date;
}

export const statusSyncEntities = [EnvironmentEntity, McpServerEntity, StatusLogEntity, StatusLogArchiveEntity, StatusReportKeyEntity];
