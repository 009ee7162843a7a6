import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Seed 004 "user_sessions: concurrent session limiting". A user may hold at
 * most users.max_concurrent_sessions live sessions (NULL = unlimited); a
 * session that would exceed it is refused, never an older one ended (why:
 * docs/schema.md, seed 004 mapping). Live = is_active, not revoked, not expired.
 */
export class ConcurrentSessionLimit1735689600009 implements MigrationInterface {
  name = 'ConcurrentSessionLimit1735689600009';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
ALTER TABLE users ADD COLUMN max_concurrent_sessions INTEGER
    CONSTRAINT users_max_concurrent_sessions_check CHECK (max_concurrent_sessions > 0);
COMMENT ON COLUMN users.max_concurrent_sessions IS
    'Most live user_sessions this user may hold at once (NULL = unlimited); enforced by user_sessions_enforce_limit';

-- Counts the user's other live sessions under a lock on the user's row, so two
-- sessions created at once for one user are checked one after the other.
-- FOR NO KEY UPDATE leaves foreign-key checks against users (KEY SHARE) unblocked.
CREATE FUNCTION user_sessions_enforce_limit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  session_limit INTEGER;
  live_sessions INTEGER;
BEGIN
  IF NOT (NEW.is_active AND NEW.revoked_at IS NULL AND NEW.expires_at > now()) THEN
    RETURN NEW;
  END IF;
  SELECT max_concurrent_sessions INTO session_limit FROM users WHERE id = NEW.user_id FOR NO KEY UPDATE;
  IF session_limit IS NULL THEN
    RETURN NEW;
  END IF;
  SELECT count(*) INTO live_sessions FROM user_sessions
   WHERE user_id = NEW.user_id AND id <> NEW.id
     AND is_active AND revoked_at IS NULL AND expires_at > now();
  IF live_sessions >= session_limit THEN
    RAISE EXCEPTION 'user % already has % active sessions, the limit set by users.max_concurrent_sessions (%)',
        NEW.user_id, live_sessions, session_limit
      USING ERRCODE = 'check_violation', TABLE = 'user_sessions', CONSTRAINT = 'user_sessions_concurrent_limit',
            HINT = 'Revoke one of the user''s active sessions first.';
  END IF;
  RETURN NEW;
END;
$$;
-- An update counts only when it makes a session live that was not live (or
-- moves it to another user); touching a live session adds none.
CREATE TRIGGER user_sessions_enforce_limit BEFORE INSERT ON user_sessions
    FOR EACH ROW EXECUTE FUNCTION user_sessions_enforce_limit();
CREATE TRIGGER user_sessions_enforce_limit_on_revive BEFORE UPDATE OF is_active, revoked_at, expires_at, user_id ON user_sessions
    FOR EACH ROW
    WHEN (NEW.user_id IS DISTINCT FROM OLD.user_id
          OR NOT (OLD.is_active AND OLD.revoked_at IS NULL AND OLD.expires_at > now()))
    EXECUTE FUNCTION user_sessions_enforce_limit();
`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
DROP TRIGGER IF EXISTS user_sessions_enforce_limit_on_revive ON user_sessions;
DROP TRIGGER IF EXISTS user_sessions_enforce_limit ON user_sessions;
DROP FUNCTION IF EXISTS user_sessions_enforce_limit();
ALTER TABLE users DROP COLUMN IF EXISTS max_concurrent_sessions;
`);
  }
}
