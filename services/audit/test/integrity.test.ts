import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { audit } from '@mcp/proto';
import { decodeBadRequest } from '@mcp/runtime';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectGrpcError, startHarness, type Harness } from './harness';

const { BreakKind, VerificationStatus, Severity } = audit;
let h: Harness;
let writer: { userId: string; token: string };

beforeAll(async () => {
  h = await startHarness();
  writer = await h.principal('chain-writer', ['service']);
  await h.call('recordAuditEvents', { events: Array.from({ length: 40 }, (_, i) => ({ actionType: 'seed.row', description: `row ${i}`, ipAddress: '10.0.0.1' })) });
});
afterAll(async () => h?.close());

const verifyAll = () => h.call('verifyIntegrity', {});

async function head(): Promise<number> {
  const { rows } = await h.pg.query('SELECT max(chain_seq)::int AS n FROM audit_logs');
  return rows[0].n;
}

/**
 * Runs `tamper` as an attacker with database access would (triggers off),
 * lets `check` look at the result, then puts every row back as it was.
 */
async function tampered(fromSeq: number, tamper: string[], check: () => Promise<void>): Promise<void> {
  await h.pg.query('CREATE TEMP TABLE saved AS SELECT * FROM audit_logs WHERE chain_seq >= $1', [fromSeq]);
  await h.pg.query('BEGIN');
  try {
    await h.pg.query('SET LOCAL session_replication_role = replica');
    for (const sql of tamper) await h.pg.query(sql);
    await h.pg.query('COMMIT');
  } catch (err) {
    await h.pg.query('ROLLBACK');
    await h.pg.query('DROP TABLE saved');
    throw err;
  }
  try {
    await check();
  } finally {
    await h.pg.query('BEGIN');
    await h.pg.query('SET LOCAL session_replication_role = replica');
    await h.pg.query('DELETE FROM audit_logs WHERE chain_seq >= $1', [fromSeq]);
    await h.pg.query('INSERT INTO audit_logs SELECT * FROM saved');
    await h.pg.query('DROP TABLE saved');
    await h.pg.query('COMMIT');
  }
  expect((await verifyAll()).status).toBe(VerificationStatus.VERIFICATION_STATUS_VERIFIED);
}

/**
 * Rewrites the newest row as the chain trigger did before per-field digests
 * (one v1 commitment over all personal fields), as a row chained before that
 * migration is; the next row then links to it.
 */
async function chainAsLegacy(seq: number): Promise<void> {
  await h.pg.query(
    `UPDATE audit_logs SET personal_digests = NULL, personal_nonces = NULL,
            personal_commitment = audit_personal_commitment(audit_logs,
              CASE WHEN subject_key_id IS NULL THEN ''::bytea ELSE (SELECT k.salt FROM audit_subject_keys k WHERE k.key_id = subject_key_id) END)
      WHERE chain_seq = $1`,
    [seq],
  );
  await h.pg.query('UPDATE audit_logs SET row_hash = audit_row_hash(audit_logs) WHERE chain_seq = $1', [seq]);
}

/** Moves the row at `seq` to audit_logs_archive with seed 004's statement. */
async function archive(seq: number, legalHold = false): Promise<void> {
  await h.pg.query(
    `WITH moved AS (DELETE FROM audit_logs WHERE chain_seq = $1 RETURNING *)
     INSERT INTO audit_logs_archive (original_audit_log_id, audit_data, checksum, legal_hold, legal_hold_reason)
     SELECT id, row_to_json(moved.*), encode(sha256(row_to_json(moved.*)::text::bytea), 'hex'), $2, CASE WHEN $2 THEN 'litigation' END FROM moved`,
    [seq, legalHold],
  );
}

const ZERO_NONCES = `\\x${'00'.repeat(8 * 16)}`;

/**
 * How many secrets readable from the database (every nonce, live or archived,
 * every subject salt, and none) make sha256(secret || id || field || value)
 * equal the stored digest of `field` (1-based) of the row at `seq`, live or
 * archived: what an attacker testing a guessed `value` would try.
 */
async function digestGuesses(seq: number, field: number, value: string): Promise<number> {
  const { rows } = await h.pg.query(
    `WITH target AS (
       SELECT id, personal_digests AS digests FROM audit_logs WHERE chain_seq = $1
       UNION ALL SELECT r.id, r.personal_digests FROM audit_logs_archive ar, json_populate_record(NULL::audit_logs, ar.audit_data) r
        WHERE (ar.audit_data->>'chain_seq')::int = $1),
     nonces AS (
       SELECT personal_nonces AS n FROM audit_logs WHERE personal_nonces IS NOT NULL
       UNION SELECT (audit_data->>'personal_nonces')::bytea FROM audit_logs_archive WHERE audit_data->>'personal_nonces' IS NOT NULL),
     secrets AS (
       SELECT substring(n FROM (i - 1) * 16 + 1 FOR 16) AS secret FROM nonces, generate_series(1, 8) i
       UNION SELECT salt FROM audit_subject_keys
       UNION SELECT ''::bytea)
     SELECT count(*)::int AS hits FROM target t, secrets s
      WHERE sha256(s.secret || uuid_send(t.id) || int2send($2::int2) || convert_to(to_jsonb($3::text)::text, 'UTF8'))
            = substring(t.digests FROM ($2 - 1) * 32 + 1 FOR 32)`,
    [seq, field, value],
  );
  return rows[0].hits;
}

async function expectBreak(kind: audit.BreakKind, sequence: number): Promise<audit.VerifyIntegrityResponse> {
  const res = await verifyAll();
  expect(res.status).toBe(VerificationStatus.VERIFICATION_STATUS_BROKEN);
  expect(res.firstBreak).toMatchObject({ kind, sequence: String(sequence) });
  expect(Number(res.verifiedHead?.sequence ?? 0)).toBeLessThan(sequence);
  return res;
}

describe('the hash chain', () => {
  it('chains rows from the RPC, from recordAudit in a service transaction, and from raw INSERTs alike', async () => {
    await h.pg.query(`INSERT INTO audit_logs (action_type, user_id, description) VALUES ('raw.insert', $1, 'written by SQL')`, [writer.userId]);
    const { acks } = await h.call('recordSecurityEvents', { events: [{ eventType: 'probe', severity: Severity.SEVERITY_LOW }] });
    await h.call('addIncidentNote', { eventId: acks[0].id, text: 'looked at it' });
    const res = await verifyAll();
    const n = await head();
    expect(res).toMatchObject({
      status: VerificationStatus.VERIFICATION_STATUS_VERIFIED,
      rowsChecked: String(n),
      fromSequence: '1',
      toSequence: String(n),
      verifiedHead: { sequence: String(n) },
      checkpointKeyConfigured: true,
    });
    const { rows } = await h.pg.query(`SELECT action_type FROM audit_logs WHERE chain_seq > $1 - 3 ORDER BY chain_seq`, [n]);
    expect(rows.map((r) => r.action_type)).toEqual(['raw.insert', 'security_events.record', 'incident.note']);
  });

  it('concurrent writers never fork it: 8 RPC writers and 8 SQL writers, then a gapless, linked chain', async () => {
    const before = await head();
    const sqlWriters = await Promise.all(Array.from({ length: 8 }, async () => {
      const c = new Client({ connectionString: h.db.url });
      await c.connect();
      return c;
    }));
    try {
      await Promise.all([
        ...Array.from({ length: 8 }, (_, w) =>
          (async () => {
            for (let b = 0; b < 5; b++) {
              await h.call('recordAuditEvents', { events: Array.from({ length: 20 }, (_, i) => ({ actionType: 'concurrent.rpc', description: `w${w} b${b} e${i}` })) });
            }
          })(),
        ),
        ...sqlWriters.map((c, w) =>
          (async () => {
            for (let b = 0; b < 10; b++) {
              // A service transaction with recordAudit in the middle of other work.
              await c.query('BEGIN');
              await c.query(`INSERT INTO audit_logs (action_type, description) SELECT 'concurrent.sql', 'w${w} b${b} ' || g FROM generate_series(1, 5) g`);
              await c.query('SELECT pg_sleep(0.002)');
              await c.query(`INSERT INTO audit_logs (action_type) VALUES ('concurrent.sql')`);
              await c.query(b % 3 === 0 ? 'ROLLBACK' : 'COMMIT');
            }
          })(),
        ),
      ]);
    } finally {
      await Promise.all(sqlWriters.map((c) => c.end()));
    }
    const { rows } = await h.pg.query(
      `SELECT count(*)::int AS n, count(DISTINCT chain_seq)::int AS distinct_seq, min(chain_seq)::int AS lo, max(chain_seq)::int AS hi,
              count(*) FILTER (WHERE prev_hash IS DISTINCT FROM prev_row_hash)::int AS unlinked
         FROM (SELECT chain_seq, prev_hash, lag(row_hash) OVER (ORDER BY chain_seq) AS prev_row_hash FROM audit_logs WHERE chain_seq > $1 - 1) x
        WHERE chain_seq > $1`,
      [before],
    );
    const written = 8 * 5 * 20 + 8 * 6 * 6; // rolled-back transactions (b = 0, 3, 6, 9) leave no rows and no gap
    expect(rows[0]).toEqual({ n: written, distinct_seq: written, lo: before + 1, hi: before + written, unlinked: 0 });
    expect((await verifyAll()).status).toBe(VerificationStatus.VERIFICATION_STATUS_VERIFIED);
  });

  it('says "nothing verified" for a range without rows, never "valid"', async () => {
    const future = await h.call('verifyIntegrity', { startTime: new Date(Date.now() + 3_600_000), endTime: new Date(Date.now() + 7_200_000) });
    expect(future).toMatchObject({ status: VerificationStatus.VERIFICATION_STATUS_NOTHING_VERIFIED, rowsChecked: '0' });
    expect(future.verifiedHead).toBeUndefined();
    const beyond = await h.call('verifyIntegrity', { fromSequence: String((await head()) + 100) });
    expect(beyond.status).toBe(VerificationStatus.VERIFICATION_STATUS_NOTHING_VERIFIED);
  });

  it('verifies a sequence range and a time range', async () => {
    const res = await h.call('verifyIntegrity', { fromSequence: '10', toSequence: '19' });
    expect(res).toMatchObject({ status: VerificationStatus.VERIFICATION_STATUS_VERIFIED, rowsChecked: '10', verifiedHead: { sequence: '19' } });
    const byTime = await h.call('verifyIntegrity', { startTime: new Date(Date.now() - 3_600_000), endTime: new Date(Date.now() + 60_000) });
    expect(byTime).toMatchObject({ status: VerificationStatus.VERIFICATION_STATUS_VERIFIED, rowsChecked: String(await head()) });
    const cases: Array<[Partial<audit.VerifyIntegrityRequest>, string]> = [
      [{ fromSequence: '9', toSequence: '3' }, 'to_sequence'],
      [{ fromSequence: '-1' }, 'from_sequence'],
      [{ fromSequence: '2', startTime: new Date() }, 'start_time'],
      [{ startTime: new Date(2), endTime: new Date(1) }, 'end_time'],
    ];
    for (const [req, field] of cases) {
      const err = await expectGrpcError(h.call('verifyIntegrity', req));
      expect(err.code, field).toBe(grpc.status.INVALID_ARGUMENT);
      expect(decodeBadRequest(err.metadata).map((v) => v.field)).toContain(field);
    }
    expect((await expectGrpcError(h.call('verifyIntegrity', {}, { token: writer.token }))).code).toBe(grpc.status.PERMISSION_DENIED);
  });
});

describe('tampering in SQL is named', () => {
  it('a changed row (content or personal field)', async () => {
    await tampered(20, [`UPDATE audit_logs SET action_type = 'innocent' WHERE chain_seq = 20`], async () => {
      expect((await expectBreak(BreakKind.BREAK_KIND_CHANGED, 20)).firstBreak!.detail).toContain('content');
    });
    await tampered(21, [`UPDATE audit_logs SET ip_address = '192.0.2.99' WHERE chain_seq = 21`], async () => {
      expect((await expectBreak(BreakKind.BREAK_KIND_CHANGED, 21)).firstBreak!.detail).toContain('personal field ip_address does not match');
    });
    // Emptying a field looks like an erasure, but none was recorded for this row.
    await tampered(22, [`UPDATE audit_logs SET description = NULL WHERE chain_seq = 22`], async () => {
      const { firstBreak } = await expectBreak(BreakKind.BREAK_KIND_CHANGED, 22);
      expect(firstBreak!.detail).toMatch(/^row [0-9a-f-]{36}: personal field description was emptied and no erasure was recorded$/);
    });
    // A field emptied and its nonce zeroed, as an erasure would, but none was recorded; a nonce zeroed alone; a nonce replaced.
    await tampered(24, [`UPDATE audit_logs SET description = NULL, personal_nonces = audit_personal_nonces_erased(personal_nonces, '{5}') WHERE chain_seq = 24`], async () => {
      const { firstBreak } = await expectBreak(BreakKind.BREAK_KIND_CHANGED, 24);
      expect(firstBreak!.detail).toMatch(/^row [0-9a-f-]{36}: the nonce of personal field description was destroyed and no erasure was recorded$/);
    });
    await tampered(24, [`UPDATE audit_logs SET personal_nonces = audit_personal_nonces_erased(personal_nonces, '{5}') WHERE chain_seq = 24`], async () => {
      expect((await expectBreak(BreakKind.BREAK_KIND_CHANGED, 24)).firstBreak!.detail).toContain('personal field description was erased but holds a value again');
    });
    await tampered(24, [`UPDATE audit_logs SET personal_nonces = overlay(personal_nonces PLACING uuid_send(gen_random_uuid()) FROM 4 * 16 + 1) WHERE chain_seq = 24`], async () => {
      expect((await expectBreak(BreakKind.BREAK_KIND_CHANGED, 24)).firstBreak!.detail).toContain('personal field description does not match its digest');
    });
    // Digests rewritten to fit a changed field: the commitment over them no longer matches.
    await tampered(
      23,
      [
        `UPDATE audit_logs SET description = 'innocent' WHERE chain_seq = 23`,
        `UPDATE audit_logs SET personal_digests = audit_personal_digests(audit_logs) WHERE chain_seq = 23`,
      ],
      async () => {
        expect((await expectBreak(BreakKind.BREAK_KIND_CHANGED, 23)).firstBreak!.detail).toContain('do not match their commitment');
      },
    );
  });

  it('a removed row, also when the later rows were renumbered to hide the gap', async () => {
    await tampered(15, [`DELETE FROM audit_logs WHERE chain_seq = 15`], () => expectBreak(BreakKind.BREAK_KIND_REMOVED, 15).then(() => undefined));
    await tampered(15, [`DELETE FROM audit_logs WHERE chain_seq = 15`, `UPDATE audit_logs SET chain_seq = chain_seq - 1 WHERE chain_seq > 15`], () =>
      expectBreak(BreakKind.BREAK_KIND_REMOVED, 15).then(() => undefined),
    );
  });

  it('an inserted row, correctly hashed and linked to its predecessor', async () => {
    // The attacker knows the algorithm: the forged row's commitment and hash are computed as the trigger would.
    const forge = `WITH base AS (
        SELECT json_populate_record(NULL::audit_logs, json_build_object(
          'id', gen_random_uuid(), 'created_at', now(), 'action_type', 'forged', 'success', true, 'chain_seq', 12,
          'prev_hash', (SELECT row_hash FROM audit_logs WHERE chain_seq = 11))) AS r),
      committed AS (SELECT json_populate_record(r, json_build_object('personal_commitment', audit_personal_commitment(r, ''::bytea))) AS r FROM base)
      INSERT INTO audit_logs (id, created_at, action_type, success, chain_seq, prev_hash, row_hash, personal_commitment)
      SELECT (r).id, (r).created_at, (r).action_type, (r).success, (r).chain_seq, (r).prev_hash, audit_row_hash(r), (r).personal_commitment FROM committed`;
    // Later rows shifted up to make room: the row after the forged one still links past it.
    await tampered(12, [`UPDATE audit_logs SET chain_seq = chain_seq + 1 WHERE chain_seq >= 12`, forge], () =>
      expectBreak(BreakKind.BREAK_KIND_INSERTED, 12).then(() => undefined),
    );
    // Or squeezed in at a taken position.
    await tampered(12, [forge], () => expectBreak(BreakKind.BREAK_KIND_INSERTED, 12).then(() => undefined));
  });

  it('reordered rows', async () => {
    await tampered(30, [`UPDATE audit_logs SET chain_seq = CASE chain_seq WHEN 30 THEN 31 ELSE 30 END WHERE chain_seq IN (30, 31)`], () =>
      expectBreak(BreakKind.BREAK_KIND_REORDERED, 30).then(() => undefined),
    );
  });

  it('newest rows cut off after a checkpoint, and a re-hashed tail that contradicts one', async () => {
    const { checkpoint } = await h.call('createCheckpoint', {});
    const n = Number(checkpoint!.sequence);
    expect(n).toBe((await head()) - 1); // the checkpoint's own audit row follows it
    await tampered(n - 4, [`DELETE FROM audit_logs WHERE chain_seq > $N - 5`.replace('$N', String(n))], async () => {
      const res = await expectBreak(BreakKind.BREAK_KIND_TRUNCATED, n - 4);
      expect(res.firstBreak!.detail).toContain(`position ${n}`);
      expect(res.verifiedHead!.sequence).toBe(String(n - 5));
    });
    // A rewrite from row 5 on, every hash recomputed: links hold, the signed head does not.
    const rehash = `DO $$ DECLARE r audit_logs; prev BYTEA; BEGIN
      UPDATE audit_logs SET description = 'rewritten' WHERE chain_seq = 5;
      FOR r IN SELECT * FROM audit_logs WHERE chain_seq >= 5 ORDER BY chain_seq LOOP
        SELECT row_hash INTO prev FROM audit_logs WHERE chain_seq = r.chain_seq - 1;
        r.prev_hash := prev;
        r.personal_digests := audit_personal_digests(r);
        r.personal_commitment := audit_personal_commitment_v2(r.id, r.personal_digests);
        UPDATE audit_logs SET prev_hash = prev, personal_digests = r.personal_digests, personal_commitment = r.personal_commitment,
               row_hash = audit_row_hash(r)
         WHERE id = r.id AND created_at = r.created_at;
      END LOOP; END $$`;
    await tampered(5, [rehash], async () => {
      await expectBreak(BreakKind.BREAK_KIND_CHECKPOINT_MISMATCH, n);
    });
  });
});

describe('checkpoints', () => {
  it('are signed, appended to a file outside the database, audited, and forged ones are ignored', async () => {
    const before = await h.call('verifyIntegrity', {});
    const made = await h.call('createCheckpoint', {});
    expect(made.checkpoint).toMatchObject({ signature: expect.stringMatching(/^[0-9a-f]{64}$/), rowHash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const lines = fs.readFileSync(path.join(h.checkpointDir, 'checkpoints.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[lines.length - 1]).toMatchObject({ sequence: made.checkpoint!.sequence, signature: made.checkpoint!.signature });
    const { rows } = await h.pg.query(`SELECT count(*)::int AS n FROM audit_logs WHERE action_type = 'audit.checkpoint' AND resource_id = $1`, [made.checkpoint!.sequence]);
    expect(rows[0].n).toBe(1);
    // An attacker with database access cannot sign: a checkpoint claiming another head is rejected.
    await h.pg.query(
      `INSERT INTO audit_checkpoints (chain_seq, row_hash, signed_at, key_fingerprint, signature)
       VALUES ($1, sha256('forged'), now(), $2, sha256('no key'))`,
      [Number(made.checkpoint!.sequence) + 50, made.checkpoint!.keyFingerprint],
    );
    const after = await verifyAll();
    expect(after.status).toBe(VerificationStatus.VERIFICATION_STATUS_VERIFIED);
    expect(after.checkpointsRejected).toBe(before.checkpointsRejected + 1);
    expect(after.checkpointsChecked).toBeGreaterThan(0);
    // Deleting the table rows does not remove what the file holds.
    await h.pg.query('DELETE FROM audit_checkpoints');
    expect((await verifyAll()).checkpointsChecked).toBe(after.checkpointsChecked);
  });
});

describe('archival', () => {
  it('verifies across rows moved to audit_logs_archive by the seed statement, and notices a changed archived copy', async () => {
    await h.pg.query(`UPDATE audit_logs SET description = description WHERE false`);
    // Seed 004's archival statement, verbatim but for the cut-off (these rows are minutes old).
    await h.pg.query(`
      INSERT INTO audit_logs_archive (original_audit_log_id, audit_data, checksum, archive_reason)
      SELECT id, row_to_json(audit_logs.*), encode(sha256(row_to_json(audit_logs.*)::text::bytea), 'hex'), 'retention_policy'
      FROM audit_logs
      WHERE chain_seq <= 25`);
    await h.pg.query('DELETE FROM audit_logs WHERE chain_seq <= 25');
    const res = await verifyAll();
    expect(res).toMatchObject({ status: VerificationStatus.VERIFICATION_STATUS_VERIFIED, archivedRows: '25', rowsChecked: String(await head()) });
    // New rows continue the chain from the archived head as well.
    await h.call('recordAuditEvents', { events: [{ actionType: 'after.archive' }] });
    expect((await verifyAll()).status).toBe(VerificationStatus.VERIFICATION_STATUS_VERIFIED);

    const original = (await h.pg.query(`SELECT id, audit_data::text AS data, checksum FROM audit_logs_archive WHERE original_audit_log_id = (SELECT original_audit_log_id FROM audit_logs_archive ORDER BY (audit_data->>'chain_seq')::bigint OFFSET 6 LIMIT 1)`)).rows[0];
    const forged = original.data.replace('"seed.row"', '"seed.forged"');
    await h.pg.query(`UPDATE audit_logs_archive SET audit_data = $2::json, checksum = encode(sha256($2::text::bytea), 'hex') WHERE id = $1`, [original.id, forged]);
    await expectBreak(BreakKind.BREAK_KIND_CHANGED, 7);
    await h.pg.query(`UPDATE audit_logs_archive SET audit_data = $2::json, checksum = $3 WHERE id = $1`, [original.id, original.data, original.checksum]);
    expect((await verifyAll()).status).toBe(VerificationStatus.VERIFICATION_STATUS_VERIFIED);
  });
});

describe('EraseSubject', () => {
  it('erases a person from audit rows (live and archived) and security events; the chain still verifies', async () => {
    const person = await h.principal('dana', ['viewer']);
    await h.call('recordAuditEvents', {
      events: Array.from({ length: 4 }, (_, i) => ({
        userId: person.userId,
        actionType: 'profile.view',
        description: `Dana viewed page ${i}`,
        ipAddress: '203.0.113.5',
        userAgent: 'Firefox',
        sessionId: 'dana-session',
        requestData: JSON.stringify({ email: 'dana@example.test' }),
      })),
    });
    await h.call('recordSecurityEvents', { events: [{ eventType: 'failed_login', severity: Severity.SEVERITY_MEDIUM, userId: person.userId, ipAddress: '203.0.113.5', city: 'Lyon', description: 'Dana mistyped' }] });
    // One of Dana's rows is already archived.
    await h.pg.query(`
      WITH moved AS (DELETE FROM audit_logs WHERE chain_seq = (SELECT min(chain_seq) FROM audit_logs WHERE user_id = $1) RETURNING *)
      INSERT INTO audit_logs_archive (original_audit_log_id, audit_data, checksum)
      SELECT id, row_to_json(moved.*), encode(sha256(row_to_json(moved.*)::text::bytea), 'hex') FROM moved`, [person.userId]);

    const res = await h.call('eraseSubject', { userId: person.userId, reason: 'GDPR request #42' });
    expect(res).toMatchObject({ auditRowsErased: '3', archivedRowsErased: '1', securityEventsErased: '1' });
    const { rows: left } = await h.pg.query(
      `SELECT count(*)::int AS n FROM audit_logs WHERE user_id = $1 OR description LIKE 'Dana%' OR host(ip_address) = '203.0.113.5'`,
      [person.userId],
    );
    expect(left[0].n).toBe(0);
    const archived = (await h.pg.query(`SELECT audit_data::text AS d FROM audit_logs_archive WHERE audit_data->>'subject_key_id' = $1`, [res.subjectKeyId])).rows;
    expect(archived).toHaveLength(1);
    expect(archived[0].d).not.toMatch(/Dana|203\.0\.113\.5|dana@|Firefox/);
    expect(JSON.parse(archived[0].d).personal_nonces).toBe(ZERO_NONCES);
    const nonces = (await h.pg.query(`SELECT DISTINCT encode(personal_nonces, 'hex') AS n FROM audit_logs WHERE subject_key_id = $1`, [res.subjectKeyId])).rows;
    expect(nonces).toEqual([{ n: '00'.repeat(8 * 16) }]);
    const events = (await h.pg.query(`SELECT user_id, ip_address, city, description FROM security_events WHERE description LIKE 'Dana%' OR city = 'Lyon'`)).rows;
    expect(events).toEqual([]);
    expect((await h.pg.query('SELECT count(*)::int AS n FROM audit_subject_keys WHERE subject_id = $1', [person.userId])).rows[0].n).toBe(0);

    const verified = await verifyAll();
    expect(verified).toMatchObject({ status: VerificationStatus.VERIFICATION_STATUS_VERIFIED, erasedRows: '4' });
    const erasure = (await h.pg.query(`SELECT user_id, resource_id, request_data FROM audit_logs WHERE action_type = 'audit.erase_subject'`)).rows;
    expect(erasure).toEqual([{ user_id: expect.any(String), resource_id: res.subjectKeyId, request_data: { reason: 'GDPR request #42' } }]);
    const [shown] = (await h.call('searchAuditLogs', { filter: { actionTypes: ['profile.view'] }, pageSize: 1 })).events;
    expect(shown).toMatchObject({ personalDataErased: true, userId: '' });
    expect(shown.description).toBeUndefined();

    // Putting a value back into an erased row is a change.
    const seq = (await h.pg.query(`SELECT chain_seq::int AS s FROM audit_logs WHERE subject_key_id = $1 ORDER BY chain_seq LIMIT 1`, [res.subjectKeyId])).rows[0].s;
    await tampered(seq, [`UPDATE audit_logs SET description = 'Dana was here' WHERE chain_seq = ${seq}`], () =>
      expectBreak(BreakKind.BREAK_KIND_CHANGED, seq).then(() => undefined),
    );
  });

  it('a salt destroyed without a recorded erasure is a change; held archived rows block erasure', async () => {
    const erin = await h.principal('erin', ['viewer']);
    const { acks } = await h.call('recordAuditEvents', { events: [{ userId: erin.userId, actionType: 'x', description: 'erin' }] });
    const seq = Number(acks[0].chainSequence);
    await h.pg.query('CREATE TEMP TABLE saved_key AS SELECT * FROM audit_subject_keys WHERE subject_id = $1', [erin.userId]);
    await h.pg.query('DELETE FROM audit_subject_keys WHERE subject_id = $1', [erin.userId]);
    await h.pg.query(`UPDATE audit_logs SET user_id = NULL, description = NULL WHERE chain_seq = $1`, [seq]);
    expect((await expectBreak(BreakKind.BREAK_KIND_CHANGED, seq)).firstBreak!.detail).toContain('no erasure was recorded');
    await h.pg.query('INSERT INTO audit_subject_keys SELECT * FROM saved_key');
    await h.pg.query(`UPDATE audit_logs SET user_id = $2, description = 'erin' WHERE chain_seq = $1`, [seq, erin.userId]);
    expect((await verifyAll()).status).toBe(VerificationStatus.VERIFICATION_STATUS_VERIFIED);

    await archive(seq, true);
    const before = await head();
    const err = await expectGrpcError(h.call('eraseSubject', { userId: erin.userId, reason: 'request' }));
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toContain('legal hold');
    expect(await head()).toBe(before);
    expect((await h.pg.query('SELECT count(*)::int AS n FROM audit_subject_keys WHERE subject_id = $1', [erin.userId])).rows[0].n).toBe(1);

    const bad = await expectGrpcError(h.call('eraseSubject', { userId: 'erin' }));
    expect(decodeBadRequest(bad.metadata).map((v) => v.field)).toEqual(['user_id', 'reason']);
    const auditor = await h.principal('erase-auditor', ['auditor']);
    expect((await expectGrpcError(h.call('eraseSubject', { userId: erin.userId, reason: 'x' }, { token: auditor.token }))).code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('erases a person named in other actors\' rows field by field (live and archived); the chain still verifies', async () => {
    const alice = await h.principal('alice-support', ['viewer']);
    const bianca = await h.principal('bianca', ['viewer']);
    await h.pg.query(`UPDATE users SET full_name = 'Bianca Castafiore' WHERE id = $1`, [bianca.userId]);
    // Rows chained before per-field digests existed (v1 commitments) naming Bianca, one of them archived since.
    const legacy: number[] = [];
    for (const note of ['old note about bianca', 'older note about bianca']) {
      await h.call('recordAuditEvents', { events: [{ userId: alice.userId, actionType: 'support.legacy', description: note }] });
      legacy.push(await head());
      await chainAsLegacy(legacy[legacy.length - 1]);
    }
    await archive(legacy[1]);

    const { acks } = await h.call('recordAuditEvents', {
      events: [
        {
          userId: alice.userId,
          actionType: 'support.ticket',
          description: 'called Bianca@MCP.local about her invoice',
          requestData: JSON.stringify({ customer: bianca.userId, priority: 2 }),
          responseData: JSON.stringify({ ok: true }),
          userAgent: 'curl/8',
          ipAddress: '198.51.100.7',
        },
        { userId: alice.userId, actionType: 'support.ticket', description: 'escalated for BIANCA CASTAFIORE', errorMessage: 'no reply' },
        { userId: alice.userId, actionType: 'support.ticket', description: 'biancamaria@example.test is someone else' },
      ],
    });
    const [named, escalated, unrelated] = acks.map((a) => Number(a.chainSequence));
    await archive(escalated);
    await h.call('recordSecurityEvents', {
      events: [{ eventType: 'file_shared', severity: Severity.SEVERITY_LOW, userId: alice.userId, description: `shared with ${bianca.userId}`, indicators: JSON.stringify({ recipient: 'bianca@mcp.local' }), city: 'Oslo' }],
    });
    expect((await verifyAll()).status).toBe(VerificationStatus.VERIFICATION_STATUS_VERIFIED);
    // Before the erasure, a right guess is confirmed by the digest (what erasure must end).
    expect(await digestGuesses(named, 5, 'called Bianca@MCP.local about her invoice')).toBe(1);

    const res = await h.call('eraseSubject', { userId: bianca.userId, reason: 'GDPR request #43' });
    expect(res).toMatchObject({ mentioningRowsErased: '2', legacyMentioningRowsKept: '2', mentioningSecurityEventsCleared: '1' });

    const live = async (seq: number) =>
      (await h.pg.query(`SELECT user_id, description, request_data, response_data, user_agent, host(ip_address) AS ip, error_message FROM audit_logs WHERE chain_seq = $1`, [seq])).rows[0];
    expect(await live(named)).toEqual({ user_id: alice.userId, description: null, request_data: null, response_data: { ok: true }, user_agent: 'curl/8', ip: '198.51.100.7', error_message: null });
    expect((await live(unrelated)).description).toBe('biancamaria@example.test is someone else');
    expect((await live(legacy[0])).description).toBe('old note about bianca');
    const archived = async (seq: number) =>
      (await h.pg.query(
        `SELECT audit_data->>'description' AS description, audit_data->>'error_message' AS error, audit_data->>'user_id' AS user_id
           FROM audit_logs_archive WHERE (audit_data->>'chain_seq')::int = $1`,
        [seq],
      )).rows[0];
    expect(await archived(escalated)).toEqual({ description: null, error: 'no reply', user_id: alice.userId });

    // The erased fields' nonces are zeroed, live and archived; the others stay.
    const nonceOf = (nonces: Buffer, field: number) => nonces.subarray((field - 1) * 16, field * 16).toString('hex');
    const liveNonces: Buffer = (await h.pg.query('SELECT personal_nonces FROM audit_logs WHERE chain_seq = $1', [named])).rows[0].personal_nonces;
    const archivedNonces: Buffer = (await h.pg.query(
      `SELECT (audit_data->>'personal_nonces')::bytea AS n FROM audit_logs_archive WHERE (audit_data->>'chain_seq')::int = $1`,
      [escalated],
    )).rows[0].n;
    const zero = '00'.repeat(16);
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((f) => nonceOf(liveNonces, f) === zero)).toEqual([false, false, false, false, true, true, false, false]);
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((f) => nonceOf(archivedNonces, f) === zero)).toEqual([false, false, false, false, true, false, false, false]);
    // A right guess of an erased value matches its digest under no secret left in the database;
    // the same test finds a field that was kept.
    expect(await digestGuesses(named, 5, 'called Bianca@MCP.local about her invoice')).toBe(0);
    expect(await digestGuesses(escalated, 5, 'escalated for BIANCA CASTAFIORE')).toBe(0);
    expect(await digestGuesses(named, 3, 'curl/8')).toBe(1);
    expect(await digestGuesses(escalated, 8, 'no reply')).toBe(1);
    expect((await archived(legacy[1])).description).toBe('older note about bianca');
    const event = (await h.pg.query(`SELECT user_id, description, indicators, city FROM security_events WHERE event_type = 'file_shared'`)).rows[0];
    expect(event).toEqual({ user_id: alice.userId, description: null, indicators: {}, city: 'Oslo' });

    // The erasure's own row lists the emptied (row, field)s by id and index only.
    const ids = (await h.pg.query(
      `SELECT id FROM audit_logs WHERE chain_seq = $1 UNION ALL SELECT original_audit_log_id FROM audit_logs_archive WHERE (audit_data->>'chain_seq')::int = $2`,
      [named, escalated],
    )).rows.map((r) => r.id);
    const [record] = (await h.pg.query(`SELECT response_data->'erasedFields' AS fields, response_data::text AS text FROM audit_logs WHERE action_type = 'audit.erase_subject' AND request_data->>'reason' = 'GDPR request #43'`)).rows;
    expect(record.fields).toEqual(expect.arrayContaining([{ rowId: ids[0], fields: [5, 6] }, { rowId: ids[1], fields: [5] }]));
    expect(record.fields).toHaveLength(2);
    expect(record.text).not.toMatch(/bianca/i);
    expect(record.text).not.toContain(bianca.userId);

    const verified = await verifyAll();
    expect(verified).toMatchObject({ status: VerificationStatus.VERIFICATION_STATUS_VERIFIED, rowsChecked: String(await head()) });

    // A field the erasure did not touch, changed, or an erased one filled again: both are changes.
    await tampered(named, [`UPDATE audit_logs SET user_agent = 'wget' WHERE chain_seq = ${named}`], async () => {
      expect((await expectBreak(BreakKind.BREAK_KIND_CHANGED, named)).firstBreak!.detail).toContain('personal field user_agent does not match');
    });
    await tampered(named, [`UPDATE audit_logs SET description = 'called someone' WHERE chain_seq = ${named}`], async () => {
      expect((await expectBreak(BreakKind.BREAK_KIND_CHANGED, named)).firstBreak!.detail).toContain('personal field description was erased but holds a value again');
    });
    // The recorded erasure covers description and request_data only, not response_data.
    await tampered(named, [`UPDATE audit_logs SET response_data = NULL WHERE chain_seq = ${named}`], async () => {
      expect((await expectBreak(BreakKind.BREAK_KIND_CHANGED, named)).firstBreak!.detail).toContain('response_data was emptied and no erasure was recorded');
    });
  });

  it('keeps the field erasures it recorded when the person who erased is erased in turn', async () => {
    const officer = await h.principal('privacy-officer', ['admin']);
    const writer2 = await h.principal('carol-writer', ['viewer']);
    const carmen = await h.principal('carmen', ['viewer']);
    const { acks } = await h.call('recordAuditEvents', { events: [{ userId: writer2.userId, actionType: 'note', description: 'met carmen@mcp.local' }] });
    await h.call('eraseSubject', { userId: carmen.userId, reason: 'request #44' }, { token: officer.token });
    const res = await h.call('eraseSubject', { userId: officer.userId, reason: 'request #45' });
    expect(res.auditRowsErased).toBe('1');
    const [carried] = (await h.pg.query(`SELECT response_data->'erasedFields' AS fields FROM audit_logs WHERE request_data->>'reason' = 'request #45'`)).rows;
    const rowId = (await h.pg.query('SELECT id FROM audit_logs WHERE chain_seq = $1', [acks[0].chainSequence])).rows[0].id;
    expect(carried.fields).toEqual([{ rowId, fields: [5] }]);
    expect((await verifyAll()).status).toBe(VerificationStatus.VERIFICATION_STATUS_VERIFIED);
  });
});
