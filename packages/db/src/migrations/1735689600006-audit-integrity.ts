import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * audit service: tamper-evident hash chain over audit_logs, signed
 * checkpoints, erasable personal data, and row-level security for reads.
 * Design and threat model: docs/audit-integrity.md.
 *
 * Every row inserted into audit_logs — by the audit service, by recordAudit()
 * in any service's transaction, or by a raw INSERT — is chained by a BEFORE
 * INSERT trigger: chain_seq (gapless total order), prev_hash, and
 * row_hash = sha256(prev_hash || canonical content). Personal fields enter the
 * content only through personal_commitment, a salted hash whose salt lives in
 * audit_subject_keys; erasure deletes the salt and the fields, and the chain
 * still verifies.
 */
export class AuditIntegrity1735689600006 implements MigrationInterface {
  name = 'AuditIntegrity1735689600006';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
ALTER TABLE audit_logs
  ADD COLUMN chain_seq BIGINT,
  ADD COLUMN prev_hash BYTEA,
  ADD COLUMN row_hash BYTEA,
  ADD COLUMN subject_key_id UUID,
  ADD COLUMN personal_commitment BYTEA;
COMMENT ON COLUMN audit_logs.chain_seq IS 'Position in the audit hash chain: gapless, assigned under the chain lock';
COMMENT ON COLUMN audit_logs.row_hash IS 'sha256(prev_hash || audit_row_content): see docs/audit-integrity.md';
COMMENT ON COLUMN audit_logs.personal_commitment IS 'Salted hash of the personal fields; survives their erasure';

-- One row: its lock is the chain lock, held by a writer from its first audit
-- row until commit, so chain positions are handed out in commit order.
CREATE TABLE audit_chain_head (
  singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
  last_writer_xid BIGINT,
  locked_at TIMESTAMPTZ
);
INSERT INTO audit_chain_head (singleton) VALUES (true);

-- Per-subject salts of the personal-field commitments. Deleting a subject's
-- key is what makes the erasure of their data final: without the salt, the
-- commitments left in the chain cannot be tested against guesses.
CREATE TABLE audit_subject_keys (
  key_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  subject_id UUID NOT NULL UNIQUE,
  salt BYTEA NOT NULL CHECK (length(salt) = 32),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE audit_subject_keys IS 'Salts of the personal-data commitments in audit_logs, one per subject; deleted on erasure';

-- Chain heads signed with a key held outside the database (HMAC-SHA256); the
-- service also appends each one to a file outside the database.
CREATE TABLE audit_checkpoints (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  chain_seq BIGINT NOT NULL CHECK (chain_seq >= 0),
  row_hash BYTEA NOT NULL CHECK (length(row_hash) = 32),
  signed_at TIMESTAMPTZ NOT NULL,
  key_fingerprint TEXT NOT NULL,
  signature BYTEA NOT NULL CHECK (length(signature) = 32),
  created_by UUID
);
CREATE INDEX idx_audit_checkpoints_chain_seq ON audit_checkpoints (chain_seq);

CREATE INDEX idx_audit_logs_chain_seq ON audit_logs (chain_seq, id);
-- Archived rows keep their chain fields inside audit_data (row_to_json of the row).
CREATE INDEX idx_audit_logs_archive_chain_seq ON audit_logs_archive (((audit_data->>'chain_seq')::bigint), original_audit_log_id);

-- The personal fields, committed with the subject's salt and the row id (so
-- equal values in different rows give unrelated commitments).
CREATE FUNCTION audit_personal_commitment(r audit_logs, salt BYTEA) RETURNS BYTEA
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT sha256(salt || uuid_send(r.id) || convert_to(jsonb_build_array(
    r.user_id, host(r.ip_address), r.user_agent, r.session_id, r.description,
    r.request_data, r.response_data, r.error_message)::text, 'UTF8'))
$$;

-- sha256(prev_hash || canonical content). Every value is rendered
-- independently of session settings (created_at as epoch microseconds).
-- chain_seq is left out: the order is committed by prev_hash links.
CREATE FUNCTION audit_row_hash(r audit_logs) RETURNS BYTEA
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT sha256(r.prev_hash || convert_to(jsonb_build_array(
    r.id, (extract(epoch FROM r.created_at) * 1000000)::bigint, r.action_type, r.resource_type, r.resource_id,
    r.mcp_server_id, r.status_code, r.duration_ms, r.success, r.trace_id, r.subject_key_id,
    encode(r.personal_commitment, 'hex'))::text, 'UTF8'))
$$;

-- Chains every inserted row. The first row of a transaction takes the chain
-- lock and reads the head (the newest row, live or archived); later rows of
-- the same transaction continue from the transaction-local state
-- "<xid>:<seq>:<hex hash>", which ROLLBACK TO SAVEPOINT reverts together with
-- the rows it describes. Updating the head row, not just locking it, makes a
-- REPEATABLE READ writer whose snapshot predates another writer's commit fail
-- (serialization error) instead of forking the chain.
CREATE FUNCTION audit_logs_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  state TEXT[] := string_to_array(current_setting('audit.chain_state', true), ':');
  xid TEXT := pg_current_xact_id()::text;
  last_seq BIGINT;
  last_hash BYTEA;
  subject_key RECORD;
BEGIN
  IF state[1] IS DISTINCT FROM xid THEN
    UPDATE audit_chain_head SET last_writer_xid = xid::bigint, locked_at = now();
    SELECT h.chain_seq, h.row_hash INTO last_seq, last_hash FROM (
      (SELECT l.chain_seq, l.row_hash FROM audit_logs l WHERE l.chain_seq IS NOT NULL ORDER BY l.chain_seq DESC LIMIT 1)
      UNION ALL
      (SELECT (ar.audit_data->>'chain_seq')::bigint, decode(substr(ar.audit_data->>'row_hash', 3), 'hex')
         FROM audit_logs_archive ar WHERE (ar.audit_data->>'chain_seq')::bigint IS NOT NULL
        ORDER BY (ar.audit_data->>'chain_seq')::bigint DESC LIMIT 1)
    ) h ORDER BY h.chain_seq DESC LIMIT 1;
    IF NOT FOUND THEN
      last_seq := 0;
      last_hash := '\\x0000000000000000000000000000000000000000000000000000000000000000';
    END IF;
  ELSE
    last_seq := state[2]::bigint;
    last_hash := decode(state[3], 'hex');
  END IF;
  IF NEW.user_id IS NULL THEN
    NEW.subject_key_id := NULL;
    NEW.personal_commitment := audit_personal_commitment(NEW, ''::bytea);
  ELSE
    SELECT key_id, salt INTO subject_key FROM audit_subject_keys WHERE subject_id = NEW.user_id;
    IF NOT FOUND THEN
      -- 32 bytes from the server's strong random source (gen_random_uuid).
      INSERT INTO audit_subject_keys (subject_id, salt)
      VALUES (NEW.user_id, uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
      RETURNING key_id, salt INTO subject_key;
    END IF;
    NEW.subject_key_id := subject_key.key_id;
    NEW.personal_commitment := audit_personal_commitment(NEW, subject_key.salt);
  END IF;
  NEW.chain_seq := last_seq + 1;
  NEW.prev_hash := last_hash;
  NEW.row_hash := audit_row_hash(NEW);
  PERFORM set_config('audit.chain_state', xid || ':' || NEW.chain_seq || ':' || encode(NEW.row_hash, 'hex'), true);
  RETURN NEW;
END;
$$;

`);
    // Rows written before this migration (none in a fresh database) join the
    // chain in (created_at, id) order: moved out and re-inserted through the trigger.
    await q.query(`
CREATE TEMP TABLE audit_logs_unchained ON COMMIT DROP AS SELECT * FROM audit_logs;
DELETE FROM audit_logs;
CREATE TRIGGER audit_logs_chain BEFORE INSERT ON audit_logs FOR EACH ROW EXECUTE FUNCTION audit_logs_chain();
INSERT INTO audit_logs SELECT * FROM audit_logs_unchained ORDER BY created_at, id;
ALTER TABLE audit_logs
  ALTER COLUMN chain_seq SET NOT NULL,
  ALTER COLUMN prev_hash SET NOT NULL,
  ALTER COLUMN row_hash SET NOT NULL,
  ALTER COLUMN personal_commitment SET NOT NULL;
`);
    await q.query(`
-- Does the current user (auth.uid()) hold this permission through any role,
-- inherited ones included? SECURITY DEFINER: mcp_app reads no role tables itself.
CREATE FUNCTION auth.has_permission(p_permission TEXT) RETURNS BOOLEAN
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH RECURSIVE effective AS (
    SELECT r.name, r.parent_role, r.permissions
      FROM user_roles ur JOIN roles r ON r.name = ur.role
     WHERE ur.user_id = auth.uid() AND (ur.expires_at IS NULL OR ur.expires_at > now())
    UNION
    SELECT p.name, p.parent_role, p.permissions FROM roles p JOIN effective e ON p.name = e.parent_role
  )
  SELECT EXISTS (SELECT 1 FROM effective WHERE permissions ? p_permission OR permissions ? '*')
$$;

ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users can view their own audit logs" ON audit_logs
    FOR SELECT USING (user_id = auth.uid());
-- A sub-select, so the permission is looked up once per query, not per row.
CREATE POLICY "Auditors can view all audit logs" ON audit_logs
    FOR SELECT USING ((SELECT auth.has_permission('audit:read')));
CREATE POLICY "System can insert audit logs" ON audit_logs
    FOR INSERT WITH CHECK (true);
GRANT SELECT, INSERT ON audit_logs TO mcp_app;
GRANT SELECT ON security_events TO mcp_app;
`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
REVOKE SELECT ON security_events FROM mcp_app;
REVOKE SELECT, INSERT ON audit_logs FROM mcp_app;
DROP POLICY IF EXISTS "System can insert audit logs" ON audit_logs;
DROP POLICY IF EXISTS "Auditors can view all audit logs" ON audit_logs;
DROP POLICY IF EXISTS "Users can view their own audit logs" ON audit_logs;
ALTER TABLE audit_logs DISABLE ROW LEVEL SECURITY;
DROP FUNCTION IF EXISTS auth.has_permission(TEXT);
DROP TRIGGER IF EXISTS audit_logs_chain ON audit_logs;
DROP FUNCTION IF EXISTS audit_logs_chain();
DROP FUNCTION IF EXISTS audit_row_hash(audit_logs);
DROP FUNCTION IF EXISTS audit_personal_commitment(audit_logs, BYTEA);
DROP INDEX IF EXISTS idx_audit_logs_archive_chain_seq;
DROP INDEX IF EXISTS idx_audit_logs_chain_seq;
DROP TABLE IF EXISTS audit_checkpoints, audit_subject_keys, audit_chain_head;
ALTER TABLE audit_logs
  DROP COLUMN IF EXISTS personal_commitment,
  DROP COLUMN IF EXISTS subject_key_id,
  DROP COLUMN IF EXISTS row_hash,
  DROP COLUMN IF EXISTS prev_hash,
  DROP COLUMN IF EXISTS chain_seq;
`);
  }
}
