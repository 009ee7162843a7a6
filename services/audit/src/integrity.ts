import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { audit } from '@mcp/proto';
import type { QueryRunner } from 'typeorm';
import { AUDIT_PERSONAL_FIELDS, ERASE_ACTION, ERASED_FIELDS_KEY } from './repository';

const { BreakKind, VerificationStatus } = audit;

/** prev_hash of the first row of the chain. */
const GENESIS_HASH = Buffer.alloc(32);
const MAX_UUID = 'ffffffff-ffff-ffff-ffff-ffffffffffff';
export const SUBJECT_KEY_RESOURCE = 'audit_subject_key';
export { ERASE_ACTION };

/** Row id → indexes (1-based, AUDIT_PERSONAL_FIELDS order) of fields a recorded erasure emptied. */
type ErasedFields = ReadonlyMap<string, ReadonlySet<number>>;

/** A signed statement "the chain's row at `sequence` has hash `rowHash`". */
export interface SignedCheckpoint {
  sequence: bigint;
  rowHash: string;
  signedAt: Date;
  keyFingerprint: string;
  signature: string;
}

/** HMAC-SHA256 over the checkpoint, with a key that never enters the database. */
export class CheckpointSigner {
  readonly fingerprint: string;

  constructor(private readonly key: Buffer) {
    this.fingerprint = createHash('sha256').update('mcp.audit.checkpoint-key').update(key).digest('hex').slice(0, 16);
  }

  sign(sequence: bigint, rowHash: string, signedAt: Date): SignedCheckpoint {
    return { sequence, rowHash, signedAt, keyFingerprint: this.fingerprint, signature: this.mac(sequence, rowHash, signedAt) };
  }

  verify(cp: SignedCheckpoint): boolean {
    if (cp.keyFingerprint !== this.fingerprint || !/^[0-9a-f]{64}$/.test(cp.signature)) return false;
    return timingSafeEqual(Buffer.from(cp.signature, 'hex'), Buffer.from(this.mac(cp.sequence, cp.rowHash, cp.signedAt), 'hex'));
  }

  private mac(sequence: bigint, rowHash: string, signedAt: Date): string {
    return createHmac('sha256', this.key).update(`mcp.audit.checkpoint.v1\n${sequence}\n${rowHash}\n${signedAt.toISOString()}`).digest('hex');
  }
}

/**
 * Checkpoints live in two places: the audit_checkpoints table (queryable) and
 * an append-only NDJSON file outside the database, which an attacker holding
 * only database access can neither delete nor rewrite. Verification takes the
 * union; a signature that does not verify is ignored (and counted).
 */
export class CheckpointStore {
  private readonly file: string;

  constructor(directory: string) {
    this.file = path.join(directory, 'checkpoints.ndjson');
  }

  /** Appends and fsyncs the file first, then the table row: a crash between leaves an extra valid checkpoint, never a missing one. */
  async append(q: QueryRunner, cp: SignedCheckpoint, createdBy: string | null): Promise<void> {
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    const handle = await fs.open(this.file, 'a', 0o600);
    try {
      const line = { sequence: cp.sequence.toString(), row_hash: cp.rowHash, signed_at: cp.signedAt.toISOString(), key_fingerprint: cp.keyFingerprint, signature: cp.signature };
      await handle.write(`${JSON.stringify(line)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await q.query(
      `INSERT INTO audit_checkpoints (chain_seq, row_hash, signed_at, key_fingerprint, signature, created_by)
       VALUES ($1, decode($2, 'hex'), $3, $4, decode($5, 'hex'), $6)`,
      [cp.sequence.toString(), cp.rowHash, cp.signedAt, cp.keyFingerprint, cp.signature, createdBy],
    );
  }

  /** Every checkpoint from the file and the table, and how many lines of the file were unreadable. */
  async load(q: QueryRunner): Promise<{ checkpoints: SignedCheckpoint[]; unreadable: number }> {
    const rows: Array<{ seq: string; row_hash: string; signed_at: Date; key_fingerprint: string; signature: string }> = await q.query(
      `SELECT chain_seq::text AS seq, encode(row_hash, 'hex') AS row_hash, signed_at, key_fingerprint, encode(signature, 'hex') AS signature
         FROM audit_checkpoints`,
    );
    const checkpoints: SignedCheckpoint[] = rows.map((r) => ({
      sequence: BigInt(r.seq),
      rowHash: r.row_hash,
      signedAt: r.signed_at,
      keyFingerprint: r.key_fingerprint,
      signature: r.signature,
    }));
    let unreadable = 0;
    let text = '';
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        const o = JSON.parse(line);
        checkpoints.push({
          sequence: BigInt(o.sequence),
          rowHash: String(o.row_hash),
          signedAt: new Date(o.signed_at),
          keyFingerprint: String(o.key_fingerprint),
          signature: String(o.signature),
        });
      } catch {
        unreadable += 1;
      }
    }
    return { checkpoints, unreadable };
  }
}

/** One chain row as verification sees it; content checks are computed by the database. */
interface ChainRow {
  seq: bigint;
  id: string;
  prevHash: Buffer;
  rowHash: Buffer;
  /** audit_row_hash(row) = row_hash */
  contentIntact: boolean;
  /** Commitment recomputed (from the fields, or from the stored per-field digests) matches; null for v1 rows whose salt was destroyed. */
  personalIntact: boolean | null;
  personalEmpty: boolean;
  /** Per-field rows (1-based field indexes): the first non-empty field whose digest differs under its nonce, if any. */
  changedField: number | null;
  /** Per-field rows: the first field emptied with its nonce intact (so not by an erasure), if any. */
  emptiedField: number | null;
  /** Per-field rows: the first field whose nonce was erased yet holds a value, if any. */
  refilledField: number | null;
  /** Per-field rows: fields whose nonce was erased (zeroed), i.e. erased after the row was chained. */
  erasedFields: number[];
  subjectKeyId: string | null;
  /** The row names a subject key that no longer exists. */
  keyDestroyed: boolean;
  archived: boolean;
  /** The archive row's seed checksum matches its JSON (always true for live rows). */
  checksumOk: boolean;
}

interface RawChainRow {
  chain_seq: string;
  id: string;
  prev_hash: Buffer;
  row_hash: Buffer;
  content_intact: boolean;
  personal_intact: boolean | null;
  personal_empty: boolean;
  changed_field: number | null;
  emptied_field: number | null;
  refilled_field: number | null;
  erased_fields: number[] | null;
  subject_key_id: string | null;
  key_destroyed: boolean;
  archived: boolean;
  checksum_ok: boolean;
}

const PERSONAL_EMPTY = (r: string): string =>
  `num_nonnulls(${r}.user_id, ${r}.ip_address, ${r}.user_agent, ${r}.session_id, ${r}.description, ${r}.request_data, ${r}.response_data, ${r}.error_message) = 0`;
/** The commitment's salt: the subject's, empty for rows without an actor, NULL once destroyed. */
const SALT = (r: string): string => `CASE WHEN ${r}.subject_key_id IS NULL THEN ''::bytea ELSE k.salt END`;
/**
 * v1 rows (personal_digests NULL) commit to the fields directly, with the
 * subject's salt; v2 rows commit to their stored per-field digests (no salt),
 * which PERSONAL_FIELDS checks one by one.
 */
const PERSONAL_INTACT = (r: string): string =>
  `CASE WHEN ${r}.personal_digests IS NOT NULL THEN coalesce(audit_personal_commitment_v2(${r}.id, ${r}.personal_digests) = ${r}.personal_commitment, false)
        WHEN ${SALT(r)} IS NULL THEN NULL
        ELSE coalesce(audit_personal_commitment(${r}, ${SALT(r)}) = ${r}.personal_commitment, false) END`;
/** The stored digest of field d.field (1-based; 32 bytes each in personal_digests). */
const STORED_DIGEST = (r: string): string => `substring(${r}.personal_digests FROM (d.field - 1) * 32 + 1 FOR 32)`;
/**
 * For v2 rows, field by field: a field with its nonce is recomputed and must
 * match its digest (an empty one that does not was emptied outside an
 * erasure); a field whose nonce was erased must be empty and is listed, for
 * the walk to match against the recorded erasures.
 */
const PERSONAL_FIELDS = (r: string): string => `
  CROSS JOIN LATERAL (
    SELECT min(d.field) FILTER (WHERE NOT d.nonce_erased AND NOT d.empty AND d.digest IS DISTINCT FROM ${STORED_DIGEST(r)}) AS changed_field,
           min(d.field) FILTER (WHERE NOT d.nonce_erased AND d.empty AND d.digest IS DISTINCT FROM ${STORED_DIGEST(r)}) AS emptied_field,
           min(d.field) FILTER (WHERE d.nonce_erased AND NOT d.empty) AS refilled_field,
           array_agg(d.field ORDER BY d.field) FILTER (WHERE d.nonce_erased) AS erased_fields
      FROM audit_personal_field_digests(${r}) d
     WHERE ${r}.personal_digests IS NOT NULL) pf`;

/** Live and archived rows (archived ones read back from their row_to_json copy), in chain order. */
const CHAIN_ROWS = `
SELECT * FROM (
  (SELECT l.chain_seq, l.id, l.prev_hash, l.row_hash, audit_row_hash(l) = l.row_hash AS content_intact,
          ${PERSONAL_INTACT('l')} AS personal_intact, ${PERSONAL_EMPTY('l')} AS personal_empty,
          pf.changed_field, pf.emptied_field, pf.refilled_field, pf.erased_fields, l.subject_key_id,
          ${SALT('l')} IS NULL AS key_destroyed, false AS archived, true AS checksum_ok
     FROM audit_logs l LEFT JOIN audit_subject_keys k ON k.key_id = l.subject_key_id ${PERSONAL_FIELDS('l')}
    WHERE (l.chain_seq, l.id) > ($1::bigint, $2::uuid) AND l.chain_seq <= $3::bigint
    ORDER BY l.chain_seq, l.id LIMIT $4)
  UNION ALL
  (SELECT r.chain_seq, r.id, r.prev_hash, r.row_hash, audit_row_hash(r) = r.row_hash,
          ${PERSONAL_INTACT('r')}, ${PERSONAL_EMPTY('r')},
          pf.changed_field, pf.emptied_field, pf.refilled_field, pf.erased_fields, r.subject_key_id,
          ${SALT('r')} IS NULL, true, ar.checksum = encode(sha256(ar.audit_data::text::bytea), 'hex')
     FROM audit_logs_archive ar
     CROSS JOIN LATERAL json_populate_record(NULL::audit_logs, ar.audit_data) r
     LEFT JOIN audit_subject_keys k ON k.key_id = r.subject_key_id ${PERSONAL_FIELDS('r')}
    WHERE ((ar.audit_data->>'chain_seq')::bigint, ar.original_audit_log_id) > ($1::bigint, $2::uuid)
      AND (ar.audit_data->>'chain_seq')::bigint <= $3::bigint
    ORDER BY (ar.audit_data->>'chain_seq')::bigint, ar.original_audit_log_id LIMIT $4)
) u ORDER BY u.chain_seq, u.id LIMIT $4`;

export interface VerifyRange {
  from?: bigint;
  to?: bigint;
  startTime?: Date;
  endTime?: Date;
}

export interface VerifyResult {
  status: audit.VerificationStatus;
  rowsChecked: number;
  erasedRows: number;
  archivedRows: number;
  firstBreak?: { kind: audit.BreakKind; sequence: bigint; detail: string };
  verifiedHead?: { sequence: bigint; rowHash: string };
  checkpointsChecked: number;
  checkpointsRejected: number;
  checkpointKeyConfigured: boolean;
  from: bigint;
  to: bigint;
}

/** Walks the chain in order, keeping two rows behind and one ahead, which is what classifying a broken link needs. */
class ChainWalk {
  rowsChecked = 0;
  erasedRows = 0;
  archivedRows = 0;
  checkpointsChecked = 0;
  failure?: { kind: audit.BreakKind; sequence: bigint; detail: string };
  private beforePrevious?: ChainRow;
  private previous?: ChainRow;
  private pending?: ChainRow;
  /** The last two rows that passed every check, newest first. */
  private passed: ChainRow[] = [];
  /** The last row verified intact and linked, before any break. */
  head?: ChainRow;

  constructor(
    private readonly expectedFirst: bigint,
    anchor: ChainRow | undefined,
    private readonly erasedKeys: ReadonlySet<string>,
    private readonly erasedFields: ErasedFields,
    private readonly checkpoints: ReadonlyMap<bigint, string>,
  ) {
    this.previous = anchor;
  }

  get lastSeen(): bigint | undefined {
    return (this.pending ?? this.previous)?.seq;
  }

  /** False once a break is found (stop reading). */
  push(row: ChainRow): boolean {
    if (this.pending) this.check(this.pending, row);
    this.pending = row;
    return !this.failure;
  }

  finish(): void {
    if (this.pending && !this.failure) this.check(this.pending, undefined);
  }

  private fail(kind: audit.BreakKind, sequence: bigint, detail: string): void {
    this.failure = { kind, sequence, detail };
    // An INSERTED break names the row before the one being checked, which had passed.
    this.head = this.passed.find((r) => r.seq < sequence);
  }

  private check(x: ChainRow, next: ChainRow | undefined): void {
    const p = this.previous;
    const pp = this.beforePrevious;
    const hex = (b: Buffer): string => b.toString('hex');
    if (p && x.seq === p.seq) {
      // The same row both live and archived (an archive move seen mid-way) counts once.
      if (x.id === p.id && x.rowHash.equals(p.rowHash)) return;
      return this.fail(BreakKind.BREAK_KIND_INSERTED, x.seq, `two rows claim position ${x.seq} (${p.id} and ${x.id})`);
    }
    if (!p && x.seq !== this.expectedFirst) {
      return this.fail(BreakKind.BREAK_KIND_REMOVED, this.expectedFirst, `rows ${this.expectedFirst}..${x.seq - 1n} are missing`);
    }
    if (!p && x.seq === 1n && !x.prevHash.equals(GENESIS_HASH)) {
      return this.fail(BreakKind.BREAK_KIND_REMOVED, 1n, 'the first row does not start the chain: rows before it are missing');
    }
    if (p && x.seq > p.seq + 1n) {
      return this.fail(BreakKind.BREAK_KIND_REMOVED, p.seq + 1n, `rows ${p.seq + 1n}..${x.seq - 1n} are missing`);
    }
    if (!x.checksumOk) {
      return this.fail(BreakKind.BREAK_KIND_CHANGED, x.seq, `archived copy of row ${x.id} does not match its checksum`);
    }
    if (!x.contentIntact) {
      return this.fail(BreakKind.BREAK_KIND_CHANGED, x.seq, `row ${x.id}: content does not match its hash`);
    }
    let erased = false;
    if (x.personalIntact === false) {
      return this.fail(BreakKind.BREAK_KIND_CHANGED, x.seq, `row ${x.id}: personal fields do not match their commitment`);
    }
    if (x.changedField !== null) {
      return this.fail(BreakKind.BREAK_KIND_CHANGED, x.seq, `row ${x.id}: personal field ${AUDIT_PERSONAL_FIELDS[x.changedField - 1]} does not match its digest`);
    }
    if (x.emptiedField !== null) {
      // An erasure zeroes the field's nonce; one emptied with its nonce intact was not erased.
      return this.fail(
        BreakKind.BREAK_KIND_CHANGED,
        x.seq,
        `row ${x.id}: personal field ${AUDIT_PERSONAL_FIELDS[x.emptiedField - 1]} was emptied and no erasure was recorded`,
      );
    }
    if (x.refilledField !== null) {
      return this.fail(BreakKind.BREAK_KIND_CHANGED, x.seq, `row ${x.id}: personal field ${AUDIT_PERSONAL_FIELDS[x.refilledField - 1]} was erased but holds a value again`);
    }
    // The subject's own rows are erased whole, under the erasure record naming their key.
    const keyErased = x.keyDestroyed && x.subjectKeyId !== null && this.erasedKeys.has(x.subjectKeyId);
    const unrecorded = x.erasedFields.find((f) => !keyErased && !this.erasedFields.get(x.id)?.has(f));
    if (unrecorded !== undefined) {
      return this.fail(
        BreakKind.BREAK_KIND_CHANGED,
        x.seq,
        `row ${x.id}: the nonce of personal field ${AUDIT_PERSONAL_FIELDS[unrecorded - 1]} was destroyed and no erasure was recorded`,
      );
    }
    if (x.keyDestroyed) {
      // The subject's salt is gone: legitimate only after a recorded erasure, which also emptied the fields.
      if (!x.subjectKeyId || !this.erasedKeys.has(x.subjectKeyId)) {
        return this.fail(BreakKind.BREAK_KIND_CHANGED, x.seq, `row ${x.id}: the salt of its personal fields is gone and no erasure was recorded`);
      }
      if (!x.personalEmpty) {
        return this.fail(BreakKind.BREAK_KIND_CHANGED, x.seq, `row ${x.id}: personal fields were erased but hold values again`);
      }
      erased = true;
    }
    if (p && !x.prevHash.equals(p.rowHash)) {
      if (next && x.prevHash.equals(next.rowHash) && next.prevHash.equals(p.rowHash)) {
        return this.fail(BreakKind.BREAK_KIND_REORDERED, x.seq, `rows at ${x.seq} and ${next.seq} are in each other's place`);
      }
      if (pp && x.prevHash.equals(pp.rowHash)) {
        return this.fail(BreakKind.BREAK_KIND_INSERTED, p.seq, `row ${p.id} at ${p.seq} is not part of the chain: ${x.seq} links to ${pp.seq}`);
      }
      return this.fail(BreakKind.BREAK_KIND_REMOVED, x.seq, `row at ${x.seq} links to a row that is gone (prev_hash ${hex(x.prevHash).slice(0, 16)}…)`);
    }
    const signed = this.checkpoints.get(x.seq);
    if (signed !== undefined) {
      this.checkpointsChecked += 1;
      if (signed !== hex(x.rowHash)) {
        return this.fail(
          BreakKind.BREAK_KIND_CHECKPOINT_MISMATCH,
          x.seq,
          `row at ${x.seq} has hash ${hex(x.rowHash).slice(0, 16)}…, the signed checkpoint says ${signed.slice(0, 16)}…: rows up to it were rewritten`,
        );
      }
    }
    this.rowsChecked += 1;
    if (erased) this.erasedRows += 1;
    if (x.archived) this.archivedRows += 1;
    this.beforePrevious = p;
    this.previous = x;
    this.passed = [x, ...this.passed.slice(0, 1)];
    this.head = x;
  }
}

function toChainRow(r: RawChainRow): ChainRow {
  return {
    seq: BigInt(r.chain_seq),
    id: r.id,
    prevHash: r.prev_hash,
    rowHash: r.row_hash,
    contentIntact: r.content_intact,
    personalIntact: r.personal_intact,
    personalEmpty: r.personal_empty,
    changedField: r.changed_field,
    emptiedField: r.emptied_field,
    refilledField: r.refilled_field,
    erasedFields: r.erased_fields ?? [],
    subjectKeyId: r.subject_key_id,
    keyDestroyed: r.key_destroyed,
    archived: r.archived,
    checksumOk: r.checksum_ok,
  };
}

/** Verifies ranges of the chain (live and archived rows) against the signed checkpoints. */
export class ChainVerifier {
  constructor(
    private readonly store: CheckpointStore,
    private readonly signer: CheckpointSigner | undefined,
    private readonly batchSize = 5000,
  ) {}

  async verify(q: QueryRunner, range: VerifyRange): Promise<VerifyResult> {
    const bounds = await this.resolve(q, range);
    const { valid, rejected } = await this.validCheckpoints(q);
    const bySequence = new Map<bigint, string>(valid.map((c) => [c.sequence, c.rowHash]));
    const erasedKeys = await this.erasedKeys(q);
    const erasedFields = await this.erasedFields(q);
    const result = (walk: ChainWalk | undefined, status: audit.VerificationStatus): VerifyResult => ({
      status,
      rowsChecked: walk?.rowsChecked ?? 0,
      erasedRows: walk?.erasedRows ?? 0,
      archivedRows: walk?.archivedRows ?? 0,
      firstBreak: walk?.failure,
      verifiedHead: walk?.head ? { sequence: walk.head.seq, rowHash: walk.head.rowHash.toString('hex') } : undefined,
      checkpointsChecked: walk?.checkpointsChecked ?? 0,
      checkpointsRejected: rejected,
      checkpointKeyConfigured: this.signer !== undefined,
      from: bounds.from,
      to: bounds.to,
    });

    const anchor = bounds.from > 1n ? (await this.rows(q, { seq: (bounds.from - 2n).toString(), id: MAX_UUID }, bounds.from - 1n, 1))[0] : undefined;
    const walk = new ChainWalk(bounds.from, anchor && anchor.seq === bounds.from - 1n ? anchor : undefined, erasedKeys, erasedFields, bySequence);
    let cursor = { seq: (bounds.from - 1n).toString(), id: MAX_UUID };
    if (bounds.from <= bounds.to) {
      for (;;) {
        const rows = await this.rows(q, cursor, bounds.to, this.batchSize);
        let going = true;
        for (const row of rows) if (going) going = walk.push(row);
        if (!going || rows.length < this.batchSize) break;
        const last = rows[rows.length - 1];
        cursor = { seq: last.seq.toString(), id: last.id };
      }
      walk.finish();
    }
    if (walk.failure) return result(walk, VerificationStatus.VERIFICATION_STATUS_BROKEN);

    // Signed positions beyond the newest row: the newest rows were cut off.
    const lastSeen = walk.lastSeen ?? 0n;
    const truncatedAt = valid
      .filter((c) => c.sequence > lastSeen && (bounds.openEnded || c.sequence <= bounds.to))
      .sort((a, b) => (a.sequence < b.sequence ? 1 : -1))[0];
    if (truncatedAt) {
      walk.failure = {
        kind: BreakKind.BREAK_KIND_TRUNCATED,
        sequence: lastSeen + 1n,
        detail: `the chain ends at ${lastSeen}, but a checkpoint signed at ${truncatedAt.signedAt.toISOString()} covers position ${truncatedAt.sequence}`,
      };
      return result(walk, VerificationStatus.VERIFICATION_STATUS_BROKEN);
    }
    return result(walk, walk.rowsChecked === 0 ? VerificationStatus.VERIFICATION_STATUS_NOTHING_VERIFIED : VerificationStatus.VERIFICATION_STATUS_VERIFIED);
  }

  /** The newest checkpoint whose signature verifies. */
  async newestCheckpoint(q: QueryRunner): Promise<SignedCheckpoint | undefined> {
    const { valid } = await this.validCheckpoints(q);
    return valid.sort((a, b) => (a.sequence < b.sequence ? 1 : a.sequence > b.sequence ? -1 : 0))[0];
  }

  private async validCheckpoints(q: QueryRunner): Promise<{ valid: SignedCheckpoint[]; rejected: number }> {
    if (!this.signer) return { valid: [], rejected: 0 };
    const { checkpoints, unreadable } = await this.store.load(q);
    const valid = checkpoints.filter((c) => this.signer!.verify(c));
    return { valid, rejected: checkpoints.length - valid.length + unreadable };
  }

  private async rows(q: QueryRunner, after: { seq: string; id: string }, upTo: bigint, limit: number): Promise<ChainRow[]> {
    const raw: RawChainRow[] = await q.query(CHAIN_ROWS, [after.seq, after.id, upTo.toString(), limit]);
    return raw.map(toChainRow);
  }

  /** Key ids whose erasure the chain itself records. */
  private async erasedKeys(q: QueryRunner): Promise<Set<string>> {
    const rows: { key_id: string }[] = await q.query(
      `SELECT resource_id AS key_id FROM audit_logs WHERE resource_type = $1 AND action_type = $2
       UNION SELECT audit_data->>'resource_id' FROM audit_logs_archive
        WHERE audit_data->>'resource_type' = $1 AND audit_data->>'action_type' = $2`,
      [SUBJECT_KEY_RESOURCE, ERASE_ACTION],
    );
    return new Set(rows.map((r) => r.key_id));
  }

  /** The (row, field)s whose erasure the chain records, from the erasure rows' response data (live and archived). */
  private async erasedFields(q: QueryRunner): Promise<ErasedFields> {
    const rows: { row_id: string; fields: number[] }[] = await q.query(
      `SELECT e->>'rowId' AS row_id, array(SELECT f::int FROM jsonb_array_elements_text(e->'fields') f WHERE f ~ '^[1-8]$') AS fields
         FROM (SELECT response_data AS d FROM audit_logs WHERE resource_type = $1 AND action_type = $2
               UNION ALL
               SELECT (audit_data->'response_data')::jsonb FROM audit_logs_archive
                WHERE audit_data->>'resource_type' = $1 AND audit_data->>'action_type' = $2) erasure
        CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(erasure.d->$3) = 'array' THEN erasure.d->$3 ELSE '[]' END) e
        WHERE jsonb_typeof(e->'fields') = 'array'`,
      [SUBJECT_KEY_RESOURCE, ERASE_ACTION, ERASED_FIELDS_KEY],
    );
    const erased = new Map<string, Set<number>>();
    for (const r of rows) {
      const fields = erased.get(r.row_id) ?? new Set<number>();
      for (const f of r.fields) fields.add(f);
      erased.set(r.row_id, fields);
    }
    return erased;
  }

  /** The inclusive chain positions to check; a time range maps to the positions of its rows. */
  private async resolve(q: QueryRunner, range: VerifyRange): Promise<{ from: bigint; to: bigint; openEnded: boolean }> {
    if (range.startTime || range.endTime) {
      const [row] = await q.query(
        `SELECT min(s)::text AS lo, max(s)::text AS hi FROM (
           SELECT chain_seq AS s FROM audit_logs
            WHERE created_at >= coalesce($1::timestamptz, '-infinity') AND created_at < coalesce($2::timestamptz, 'infinity')
           UNION ALL
           SELECT (audit_data->>'chain_seq')::bigint FROM audit_logs_archive
            WHERE (audit_data->>'created_at')::timestamptz >= coalesce($1::timestamptz, '-infinity')
              AND (audit_data->>'created_at')::timestamptz < coalesce($2::timestamptz, 'infinity')) x`,
        [range.startTime ?? null, range.endTime ?? null],
      );
      // No row in the window: an empty range (from > to).
      return row.lo === null ? { from: 1n, to: 0n, openEnded: false } : { from: BigInt(row.lo), to: BigInt(row.hi), openEnded: false };
    }
    const [row] = await q.query(
      `SELECT greatest((SELECT max(chain_seq) FROM audit_logs),
                       (SELECT max((audit_data->>'chain_seq')::bigint) FROM audit_logs_archive), 0)::text AS newest`,
    );
    const newest = BigInt(row.newest);
    const to = range.to !== undefined && range.to < newest ? range.to : newest;
    return { from: range.from ?? 1n, to, openEnded: range.to === undefined };
  }
}
