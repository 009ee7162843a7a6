import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Generic time-range partition upkeep, used by the migrations (initial
 * partitions) and by the retention service (premake, default-partition
 * drain). Partition names: `<parent>_pYYYYMMDD` for daily, and seed 004's
 * `<parent>_yYYYYmMM` for monthly partitions. Bounds are UTC days/months.
 */
export class PartitionManagement1735689600001 implements MigrationInterface {
  name = 'PartitionManagement1735689600001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
CREATE TABLE partitioned_tables (
    parent_table TEXT PRIMARY KEY,
    partition_column TEXT NOT NULL,
    width TEXT NOT NULL CHECK (width IN ('day', 'month')),
    premake INTEGER NOT NULL DEFAULT 7 CHECK (premake BETWEEN 1 AND 366)
);
COMMENT ON TABLE partitioned_tables IS 'Time-partitioned tables and how far ahead (in partitions) their partitions are created';

CREATE OR REPLACE FUNCTION partition_bounds(p_width TEXT, p_at TIMESTAMPTZ, OUT lower_bound TIMESTAMPTZ, OUT upper_bound TIMESTAMPTZ)
LANGUAGE sql IMMUTABLE AS $$
  SELECT date_trunc(p_width, p_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
         (date_trunc(p_width, p_at AT TIME ZONE 'UTC') + ('1 ' || p_width)::interval) AT TIME ZONE 'UTC'
$$;

CREATE OR REPLACE FUNCTION partition_name(p_parent TEXT, p_width TEXT, p_lower TIMESTAMPTZ) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
  SELECT p_parent || CASE p_width
    WHEN 'day' THEN to_char(p_lower AT TIME ZONE 'UTC', '"_p"YYYYMMDD')
    ELSE to_char(p_lower AT TIME ZONE 'UTC', '"_y"YYYY"m"MM') END
$$;

-- Creates the partition of p_parent covering p_at unless it exists. Rows of
-- that range already sitting in the default partition are moved into it in
-- the same transaction, so creating a partition never fails on them.
CREATE OR REPLACE FUNCTION ensure_partition(p_parent TEXT, p_at TIMESTAMPTZ) RETURNS TEXT
LANGUAGE plpgsql AS $$
DECLARE
  cfg partitioned_tables%ROWTYPE;
  b RECORD;
  part TEXT;
  default_part TEXT;
  has_rows BOOLEAN;
BEGIN
  SELECT * INTO STRICT cfg FROM partitioned_tables WHERE parent_table = p_parent;
  SELECT * INTO b FROM partition_bounds(cfg.width, p_at);
  part := partition_name(p_parent, cfg.width, b.lower_bound);
  IF to_regclass(quote_ident(part)) IS NOT NULL THEN
    RETURN part;
  END IF;
  -- Serialise creators of the same parent (several replicas premaking at once).
  PERFORM pg_advisory_xact_lock(hashtext('ensure_partition:' || p_parent));
  -- Re-check with a catalog query, not to_regclass: to_regclass answers from this
  -- backend's catalog cache, which still holds the miss from the check above and
  -- would not see a partition that a concurrent creator committed while we waited.
  IF EXISTS (SELECT 1 FROM pg_class WHERE relname = part AND pg_table_is_visible(oid)) THEN
    RETURN part;
  END IF;
  default_part := p_parent || '_default';
  IF to_regclass(quote_ident(default_part)) IS NOT NULL THEN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I >= $1 AND %I < $2)',
                   default_part, cfg.partition_column, cfg.partition_column)
      INTO has_rows USING b.lower_bound, b.upper_bound;
  ELSE
    has_rows := false;
  END IF;
  IF has_rows THEN
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)', part, p_parent);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   default_part, cfg.partition_column, cfg.partition_column, part)
      USING b.lower_bound, b.upper_bound;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   p_parent, part, b.lower_bound, b.upper_bound);
  ELSE
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                   part, p_parent, b.lower_bound, b.upper_bound);
  END IF;
  RETURN part;
END;
$$;

-- Ensures partitions from the one covering p_from up to premake partitions
-- past now(), for one parent or all registered parents. Returns how many it created.
CREATE OR REPLACE FUNCTION maintain_partitions(p_parent TEXT DEFAULT NULL, p_from TIMESTAMPTZ DEFAULT now())
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
  cfg partitioned_tables%ROWTYPE;
  at TIMESTAMPTZ;
  created INTEGER := 0;
  before_count INTEGER;
BEGIN
  FOR cfg IN SELECT * FROM partitioned_tables WHERE p_parent IS NULL OR parent_table = p_parent ORDER BY parent_table LOOP
    at := (partition_bounds(cfg.width, least(p_from, now()))).lower_bound;
    WHILE at < now() + (cfg.premake || ' ' || cfg.width)::interval LOOP
      SELECT count(*) INTO before_count FROM pg_inherits WHERE inhparent = cfg.parent_table::regclass;
      PERFORM ensure_partition(cfg.parent_table, at);
      IF (SELECT count(*) FROM pg_inherits WHERE inhparent = cfg.parent_table::regclass) > before_count THEN
        created := created + 1;
      END IF;
      at := at + ('1 ' || cfg.width)::interval;
    END LOOP;
  END LOOP;
  RETURN created;
END;
$$;
`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
DROP FUNCTION IF EXISTS maintain_partitions(TEXT, TIMESTAMPTZ);
DROP FUNCTION IF EXISTS ensure_partition(TEXT, TIMESTAMPTZ);
DROP FUNCTION IF EXISTS partition_name(TEXT, TEXT, TIMESTAMPTZ);
DROP FUNCTION IF EXISTS partition_bounds(TEXT, TIMESTAMPTZ);
DROP TABLE IF EXISTS partitioned_tables;
`);
  }
}
