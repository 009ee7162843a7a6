import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * ListSecurityEvents filters on indicators by JSON containment
 * (`indicators @> $1::jsonb`); a GIN index with jsonb_path_ops serves exactly
 * that operator and is smaller than the default jsonb_ops.
 */
export class SecurityEventIndicators1735689600008 implements MigrationInterface {
  name = 'SecurityEventIndicators1735689600008';

  async up(q: QueryRunner): Promise<void> {
    await q.query('CREATE INDEX idx_security_events_indicators ON security_events USING gin (indicators jsonb_path_ops)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX IF EXISTS idx_security_events_indicators');
  }
}
