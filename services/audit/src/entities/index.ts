import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * The tables this service owns. Every column has an explicit `type`: the
 * test runner's compiler emits no decorator metadata, and the drift check
 * compares these types with the migrated schema.
 */

/** Partitioned monthly on created_at; the chain columns are set by the audit_logs_chain trigger. */
@Entity({ name: 'audit_logs', synchronize: false })
export class AuditLogEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  /** Partition key, hence part of the primary key. */
  @PrimaryColumn({ type: 'timestamptz', name: 'created_at' }) createdAt!: Date;
  @Column({ type: 'uuid', name: 'user_id', nullable: true }) userId!: string | null;
  @Column({ type: 'text', name: 'action_type' }) actionType!: string;
  @Column({ type: 'text', name: 'resource_type', nullable: true }) resourceType!: string | null;
  @Column({ type: 'text', name: 'resource_id', nullable: true }) resourceId!: string | null;
  @Column({ type: 'uuid', name: 'mcp_server_id', nullable: true }) mcpServerId!: string | null;
  @Column({ type: 'text', nullable: true }) description!: string | null;
  @Column({ type: 'jsonb', name: 'request_data', nullable: true }) requestData!: unknown;
  @Column({ type: 'jsonb', name: 'response_data', nullable: true }) responseData!: unknown;
  @Column({ type: 'integer', name: 'status_code', nullable: true }) statusCode!: number | null;
  @Column({ type: 'integer', name: 'duration_ms', nullable: true }) durationMs!: number | null;
  @Column({ type: 'boolean' }) success!: boolean;
  @Column({ type: 'text', name: 'error_message', nullable: true }) errorMessage!: string | null;
  @Column({ type: 'inet', name: 'ip_address', nullable: true }) ipAddress!: string | null;
  @Column({ type: 'text', name: 'user_agent', nullable: true }) userAgent!: string | null;
  @Column({ type: 'text', name: 'session_id', nullable: true }) sessionId!: string | null;
  @Column({ type: 'text', name: 'trace_id', nullable: true }) traceId!: string | null;
  @Column({ type: 'bigint', name: 'chain_seq' }) chainSeq!: string;
  @Column({ type: 'bytea', name: 'prev_hash' }) prevHash!: Buffer;
  @Column({ type: 'bytea', name: 'row_hash' }) rowHash!: Buffer;
  @Column({ type: 'uuid', name: 'subject_key_id', nullable: true }) subjectKeyId!: string | null;
  @Column({ type: 'bytea', name: 'personal_commitment' }) personalCommitment!: Buffer;
  @Column({ type: 'bytea', name: 'personal_digests', nullable: true }) personalDigests!: Buffer | null;
  @Column({ type: 'bytea', name: 'personal_nonces', nullable: true }) personalNonces!: Buffer | null;
}

@Entity({ name: 'audit_logs_archive' })
export class AuditLogArchiveEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'uuid', name: 'original_audit_log_id' }) originalAuditLogId!: string;
  /** row_to_json of the audit row, chain fields included; json keeps the checksummed text byte for byte. */
  @Column({ type: 'json', name: 'audit_data' }) auditData!: unknown;
  @Column({ type: 'text' }) checksum!: string;
  @Column({ type: 'text', name: 'archive_reason' }) archiveReason!: string;
  @Column({ type: 'timestamptz', name: 'archived_at' }) archivedAt!: Date;
  @Column({ type: 'timestamptz', name: 'retention_until', nullable: true }) retentionUntil!: Date | null;
  @Column({ type: 'boolean', name: 'legal_hold' }) legalHold!: boolean;
  @Column({ type: 'text', name: 'legal_hold_reason', nullable: true }) legalHoldReason!: string | null;
}

@Entity({ name: 'security_events' })
export class SecurityEventEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'timestamptz', name: 'occurred_at' }) occurredAt!: Date;
  @Column({ type: 'text', name: 'event_type' }) eventType!: string;
  @Column({ type: 'text' }) severity!: string;
  @Column({ type: 'text', name: 'source_service', nullable: true }) sourceService!: string | null;
  @Column({ type: 'uuid', name: 'user_id', nullable: true }) userId!: string | null;
  @Column({ type: 'inet', name: 'ip_address', nullable: true }) ipAddress!: string | null;
  @Column({ type: 'text', name: 'user_agent', nullable: true }) userAgent!: string | null;
  @Column({ type: 'text', nullable: true }) description!: string | null;
  @Column({ type: 'numeric', name: 'threat_score', nullable: true }) threatScore!: string | null;
  @Column({ type: 'jsonb' }) indicators!: unknown;
  @Column({ type: 'text', name: 'country_code', nullable: true }) countryCode!: string | null;
  @Column({ type: 'text', nullable: true }) city!: string | null;
  @Column({ type: 'jsonb', name: 'behavior_signals' }) behaviorSignals!: unknown;
  @Column({ type: 'text' }) status!: string;
  @Column({ type: 'uuid', name: 'assigned_to', nullable: true }) assignedTo!: string | null;
  @Column({ type: 'timestamptz', name: 'assigned_at', nullable: true }) assignedAt!: Date | null;
  @Column({ type: 'jsonb' }) notes!: unknown;
  @Column({ type: 'boolean' }) resolved!: boolean;
  @Column({ type: 'timestamptz', name: 'resolved_at', nullable: true }) resolvedAt!: Date | null;
  @Column({ type: 'uuid', name: 'resolved_by', nullable: true }) resolvedBy!: string | null;
  @Column({ type: 'text', name: 'resolution_notes', nullable: true }) resolutionNotes!: string | null;
  @Column({ type: 'timestamptz', name: 'created_at' }) createdAt!: Date;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt!: Date;
}

/** The chain lock (one row). */
@Entity({ name: 'audit_chain_head' })
export class AuditChainHeadEntity {
  @PrimaryColumn({ type: 'boolean' }) singleton!: boolean;
  @Column({ type: 'bigint', name: 'last_writer_xid', nullable: true }) lastWriterXid!: string | null;
  @Column({ type: 'timestamptz', name: 'locked_at', nullable: true }) lockedAt!: Date | null;
}

/** Salts of the personal-data commitments; a subject's row is deleted by erasure. */
@Entity({ name: 'audit_subject_keys' })
export class AuditSubjectKeyEntity {
  @PrimaryColumn({ type: 'uuid', name: 'key_id' }) keyId!: string;
  @Column({ type: 'uuid', name: 'subject_id' }) subjectId!: string;
  @Column({ type: 'bytea' }) salt!: Buffer;
  @Column({ type: 'timestamptz', name: 'created_at' }) createdAt!: Date;
}

@Entity({ name: 'audit_checkpoints' })
export class AuditCheckpointEntity {
  @PrimaryColumn({ type: 'bigint' }) id!: string;
  @Column({ type: 'bigint', name: 'chain_seq' }) chainSeq!: string;
  @Column({ type: 'bytea', name: 'row_hash' }) rowHash!: Buffer;
  @Column({ type: 'timestamptz', name: 'signed_at' }) signedAt!: Date;
  @Column({ type: 'text', name: 'key_fingerprint' }) keyFingerprint!: string;
  @Column({ type: 'bytea' }) signature!: Buffer;
  @Column({ type: 'uuid', name: 'created_by', nullable: true }) createdBy!: string | null;
}

export const auditEntities = [
  AuditLogEntity,
  AuditLogArchiveEntity,
  SecurityEventEntity,
  AuditChainHeadEntity,
  AuditSubjectKeyEntity,
  AuditCheckpointEntity,
];
