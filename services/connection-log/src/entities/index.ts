import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * The tables this service owns. Every column has an explicit `type`: the
 * test runner's compiler emits no decorator metadata, and the drift check
 * compares these types with the migrated schema.
 */

@Entity({ name: 'agents' })
export class AgentEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'uuid', name: 'user_id' }) userId!: string;
  @Column({ type: 'text' }) name!: string;
  @Column({ type: 'text', nullable: true }) description!: string | null;
  @Column({ type: 'boolean', name: 'is_active' }) isActive!: boolean;
  @Column({ type: 'timestamptz', name: 'created_at' }) createdAt!: Date;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt!: Date;
}

@Entity({ name: 'agent_mcp_connections' })
export class AgentConnectionEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'uuid', name: 'agent_id' }) agentId!: string;
  @Column({ type: 'uuid', name: 'mcp_server_instance_id' }) mcpServerInstanceId!: string;
  @Column({ type: 'boolean', name: 'is_active' }) isActive!: boolean;
  @Column({ type: 'text', nullable: true }) status!: string | null;
  @Column({ type: 'timestamptz', name: 'created_at' }) createdAt!: Date;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt!: Date;
}

/** Columns shared by agent_mcp_connection_logs and its archive (LIKE … INCLUDING ALL). */
abstract class ConnectionLogColumns {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  /** Partition key, hence part of the primary key. */
  @PrimaryColumn({ type: 'timestamptz' }) timestamp!: Date;
  @Column({ type: 'uuid', name: 'connection_id' }) connectionId!: string;
  @Column({ type: 'text', name: 'event_type' }) eventType!: string;
  @Column({ type: 'text', name: 'event_details', nullable: true }) eventDetails!: string | null;
  @Column({ type: 'text', name: 'old_status', nullable: true }) oldStatus!: string | null;
  @Column({ type: 'text', name: 'new_status', nullable: true }) newStatus!: string | null;
  @Column({ type: 'jsonb', name: 'request_data', nullable: true }) requestData!: unknown;
  @Column({ type: 'jsonb', name: 'response_data', nullable: true }) responseData!: unknown;
  @Column({ type: 'jsonb', name: 'error_data', nullable: true }) errorData!: unknown;
  @Column({ type: 'integer', name: 'latency_ms', nullable: true }) latencyMs!: number | null;
  @Column({ type: 'bigint', name: 'bytes_transferred', nullable: true }) bytesTransferred!: string | null;
  @Column({ type: 'uuid', name: 'created_by', nullable: true }) createdBy!: string | null;
  @Column({ type: 'text', name: 'user_agent', nullable: true }) userAgent!: string | null;
  @Column({ type: 'inet', name: 'ip_address', nullable: true }) ipAddress!: string | null;
  @Column({ type: 'text', name: 'session_id', nullable: true }) sessionId!: string | null;
  @Column({ type: 'bigint', name: 'ingest_xid' }) ingestXid!: string;
}

@Entity({ name: 'agent_mcp_connection_logs', synchronize: false })
export class ConnectionLogEntity extends ConnectionLogColumns {}

@Entity({ name: 'agent_mcp_connection_logs_archive', synchronize: false })
export class ConnectionLogArchiveEntity extends ConnectionLogColumns {}

export const connectionLogEntities = [AgentEntity, AgentConnectionEntity, ConnectionLogEntity, ConnectionLogArchiveEntity];
