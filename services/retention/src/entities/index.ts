import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * The tables this service owns. Every column has an explicit `type`: the
 * test runner's compiler emits no decorator metadata, and the drift check
 * compares these types with the migrated schema.
 */

@Entity({ name: 'retention_policies' })
export class RetentionPolicyEntity {
  @PrimaryColumn({ type: 'text', name: 'table_name' }) tableName!: string;
  @Column({ type: 'integer', name: 'hot_days' }) hotDays!: number;
  @Column({ type: 'boolean', name: 'archive_before_delete' }) archiveBeforeDelete!: boolean;
  @Column({ type: 'integer', name: 'archive_days', nullable: true }) archiveDays!: number | null;
  @Column({ type: 'boolean' }) enabled!: boolean;
  @Column({ type: 'integer', name: 'expected_interval_hours' }) expectedIntervalHours!: number;
  @Column({ type: 'uuid', name: 'updated_by', nullable: true }) updatedBy!: string | null;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt!: Date;
}

@Entity({ name: 'retention_runs' })
export class RetentionRunEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'text' }) policy!: string;
  @Column({ type: 'boolean', name: 'dry_run' }) dryRun!: boolean;
  @Column({ type: 'text' }) status!: string;
  @Column({ type: 'uuid', name: 'requested_by', nullable: true }) requestedBy!: string | null;
  @Column({ type: 'timestamptz', name: 'started_at' }) startedAt!: Date;
  @Column({ type: 'timestamptz', name: 'finished_at', nullable: true }) finishedAt!: Date | null;
  @Column({ type: 'jsonb' }) results!: unknown;
  @Column({ type: 'text', nullable: true }) error!: string | null;
}

@Entity({ name: 'legal_holds' })
export class LegalHoldEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'text', name: 'subject_type' }) subjectType!: string;
  @Column({ type: 'uuid', name: 'subject_id', nullable: true }) subjectId!: string | null;
  @Column({ type: 'timestamptz', name: 'starts_at', nullable: true }) startsAt!: Date | null;
  @Column({ type: 'timestamptz', name: 'ends_at', nullable: true }) endsAt!: Date | null;
  @Column({ type: 'text' }) reason!: string;
  @Column({ type: 'uuid', name: 'placed_by' }) placedBy!: string;
  @Column({ type: 'timestamptz', name: 'placed_at' }) placedAt!: Date;
  @Column({ type: 'timestamptz', name: 'released_at', nullable: true }) releasedAt!: Date | null;
  @Column({ type: 'uuid', name: 'released_by', nullable: true }) releasedBy!: string | null;
  @Column({ type: 'text', name: 'release_reason', nullable: true }) releaseReason!: string | null;
}

/** Seed 000's run history of maintenance operations (one row per retention run). */
@Entity({ name: 'system_logs' })
export class SystemLogEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'text' }) operation!: string;
  @Column({ type: 'text', nullable: true }) details!: string | null;
  @Column({ type: 'jsonb' }) metadata!: unknown;
  @Column({ type: 'timestamptz' }) timestamp!: Date;
}

/** Registry of time-partitioned tables read by maintain_partitions() / ensure_partition(). */
@Entity({ name: 'partitioned_tables' })
export class PartitionedTableEntity {
  @PrimaryColumn({ type: 'text', name: 'parent_table' }) parentTable!: string;
  @Column({ type: 'text', name: 'partition_column' }) partitionColumn!: string;
  @Column({ type: 'text' }) width!: string;
  @Column({ type: 'integer' }) premake!: number;
}

export const retentionEntities = [RetentionPolicyEntity, RetentionRunEntity, LegalHoldEntity, SystemLogEntity, PartitionedTableEntity];
