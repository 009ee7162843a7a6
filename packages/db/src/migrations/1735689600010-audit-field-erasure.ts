import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * audit service: personal data of a person named inside *another* actor's
 * audit row becomes erasable without breaking the chain (issue 6; design in
 * docs/audit-integrity.md, "Erasing a person named in other actors' rows").
 *
 * New rows commit to each personal field separately: digest i =
 * sha256(nonce i || id || i || field i) with a random 16-byte nonce per field,
 * and personal_commitment = sha256(id || digest 1 || ... || digest 8) (v2).
 * Erasing a field sets it NULL and zeroes its nonce: the digest stays (the
 * commitment still checks) but no value left in the database lets anyone test
 * a guess of the erased text against it. Verification accepts a zeroed nonce
 * where a chained erasure record names the (row, field). Rows chained before
 * this migration keep the v1 commitment (personal_digests NULL) and verify as before.
 */
export class AuditFieldErasure1735689600010 implements MigrationInterface {
  name = 'AuditFieldErasure1735689600010';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
-- Eight 32-byte digests and eight 16-byte nonces back to back (one bytea rather
-- than an array: it maps and travels through row_to_json like the other hash columns).
ALTER TABLE audit_logs ADD COLUMN personal_digests BYTEA, ADD COLUMN personal_nonces BYTEA;
COMMENT ON COLUMN audit_logs.personal_digests IS
  'sha256(nonce || id || index || value) of each of the 8 personal fields, concatenated (v2 commitment); NULL on rows chained before per-field erasure existed';
COMMENT ON COLUMN audit_logs.personal_nonces IS
  'Random 16-byte nonce of each of the 8 personal fields, concatenated; all zero for an erased field; NULL on v1 rows';

-- Field i (1..8, the order of audit_personal_commitment) of a row, its digest
-- under its nonce, whether it is empty, and whether its nonce was erased
-- (zeroed: the digest can no longer be recomputed). Each value is rendered as
-- jsonb text ('null' when NULL). A missing nonce gives a NULL digest.
CREATE FUNCTION audit_personal_field_digests(r audit_logs)
RETURNS TABLE (field INT, digest BYTEA, empty BOOLEAN, nonce_erased BOOLEAN)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT e.i::int, sha256(n.nonce || uuid_send(r.id) || int2send(e.i::int2) || convert_to(e.v::text, 'UTF8')),
         jsonb_typeof(e.v) = 'null', coalesce(n.nonce = decode(repeat('00', 16), 'hex'), false)
    FROM jsonb_array_elements(jsonb_build_array(
      r.user_id, host(r.ip_address), r.user_agent, r.session_id, r.description,
      r.request_data, r.response_data, r.error_message)) WITH ORDINALITY AS e(v, i)
   CROSS JOIN LATERAL (SELECT substring(r.personal_nonces FROM (e.i::int - 1) * 16 + 1 FOR 16) AS nonce) n
$$;

CREATE FUNCTION audit_personal_digests(r audit_logs) RETURNS BYTEA
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT string_agg(d.digest, ''::bytea ORDER BY d.field) FROM audit_personal_field_digests(r) d
$$;

-- NULL unless all eight digests are present. No salt: the digests are already
-- hidden by their nonces, and without one the commitment stays checkable after
-- the subject's salt is destroyed.
CREATE FUNCTION audit_personal_commitment_v2(id UUID, digests BYTEA) RETURNS BYTEA
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN length(digests) = 8 * 32 THEN sha256(uuid_send(id) || digests) END
$$;

-- The nonces with those of \`fields\` (1-based) zeroed: what erasing the fields leaves. NULL stays NULL (v1 rows).
CREATE FUNCTION audit_personal_nonces_erased(nonces BYTEA, fields INT[]) RETURNS BYTEA
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN nonces IS NOT NULL THEN (
    SELECT string_agg(CASE WHEN i = ANY(fields) THEN decode(repeat('00', 16), 'hex') ELSE substring(nonces FROM (i - 1) * 16 + 1 FOR 16) END,
                      ''::bytea ORDER BY i)
      FROM generate_series(1, 8) i) END
$$;

-- The chain trigger of AuditIntegrity1735689600006, committing new rows with v2.
CREATE OR REPLACE FUNCTION audit_logs_chain() RETURNS trigger
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
  ELSE
    SELECT key_id, salt INTO subject_key FROM audit_subject_keys WHERE subject_id = NEW.user_id;
    IF NOT FOUND THEN
      -- 32 bytes from the server's strong random source (gen_random_uuid).
      INSERT INTO audit_subject_keys (subject_id, salt)
      VALUES (NEW.user_id, uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
      RETURNING key_id, salt INTO subject_key;
    END IF;
    NEW.subject_key_id := subject_key.key_id;
  END IF;
  -- One nonce per field from the server's strong random source. A v4 uuid has
  -- 6 fixed version/variant bits, so each nonce carries 122 random bits: ample
  -- against guessing, and the same source the subject salts come from.
  NEW.personal_nonces := (SELECT string_agg(uuid_send(gen_random_uuid()), ''::bytea) FROM generate_series(1, 8));
  NEW.personal_digests := audit_personal_digests(NEW);
  NEW.personal_commitment := audit_personal_commitment_v2(NEW.id, NEW.personal_digests);
  NEW.chain_seq := last_seq + 1;
  NEW.prev_hash := last_hash;
  NEW.row_hash := audit_row_hash(NEW);
  PERFORM set_config('audit.chain_state', xid || ':' || NEW.chain_seq || ':' || encode(NEW.row_hash, 'hex'), true);
  RETURN NEW;
END;
$$;

`);
  }

  /** Restores the v1 trigger. Rows chained with v2 commitments no longer verify after this (their digests are gone). */
  async down(q: QueryRunner): Promise<void> {
    await q.query(`
CREATE OR REPLACE FUNCTION audit_logs_chain() RETURNS trigger
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

DROP FUNCTION IF EXISTS audit_personal_nonces_erased(BYTEA, INT[]);
DROP FUNCTION IF EXISTS audit_personal_commitment_v2(UUID, BYTEA);
DROP FUNCTION IF EXISTS audit_personal_digests(audit_logs);
DROP FUNCTION IF EXISTS audit_personal_field_digests(audit_logs);
ALTER TABLE audit_logs DROP COLUMN IF EXISTS personal_nonces, DROP COLUMN IF EXISTS personal_digests;
`);
  }
}
