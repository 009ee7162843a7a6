import { FailedPreconditionError, inTransaction, recordAudit, type CallContext, type Logger, type Redactor } from '@mcp/runtime';
import type { DataSource } from 'typeorm';
import type { ChainVerifier, CheckpointSigner, CheckpointStore, SignedCheckpoint } from './integrity';

export interface SignedHead {
  checkpoint: SignedCheckpoint;
  /** Rows verified since the previous checkpoint before signing. */
  rowsVerified: number;
}

export interface CheckpointOptions {
  /** AUDIT_CHECKPOINT_KEY; without it nothing is signed and verification cannot detect truncation. */
  key: Buffer | undefined;
  /** AUDIT_CHECKPOINT_DIR: where the append-only checkpoint file lives, outside the database. */
  directory: string;
  /** How often the chain head is signed in the background; 0 = only on demand. */
  intervalMs: number;
}

/** Signs the chain head after verifying what was appended since the last checkpoint. */
export class CheckpointService {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly dataSource: DataSource,
    private readonly verifier: ChainVerifier,
    private readonly store: CheckpointStore,
    private readonly signer: CheckpointSigner | undefined,
    private readonly redactor: Redactor,
    private readonly logger: Logger,
  ) {}

  /** On demand (the CreateCheckpoint RPC): always signs, and the checkpoint is audited. */
  async create(ctx: CallContext): Promise<SignedHead> {
    return (await this.signHead(ctx))!;
  }

  /** Background runs have no call: nothing is audited, and an unchanged head is not signed again. */
  private async signHead(ctx: CallContext | undefined): Promise<SignedHead | undefined> {
    const signer = this.signer;
    if (!signer) throw new FailedPreconditionError('no checkpoint key is configured (AUDIT_CHECKPOINT_KEY)');
    const { result, previous } = await inTransaction(
      this.dataSource,
      ctx,
      async (q) => {
        const previous = await this.verifier.newestCheckpoint(q);
        return { previous, result: await this.verifier.verify(q, { from: previous && previous.sequence > 0n ? previous.sequence : 1n }) };
      },
      { isolation: 'REPEATABLE READ' },
    );
    if (result.firstBreak) {
      const b = result.firstBreak;
      throw new FailedPreconditionError(`not signing a broken chain: break at position ${b.sequence}: ${b.detail}`);
    }
    const head = result.verifiedHead;
    if (!ctx && (!head || previous?.sequence === head.sequence)) return undefined;
    if (!head) throw new FailedPreconditionError('the audit chain is empty: nothing to sign');
    const checkpoint = signer.sign(head.sequence, head.rowHash, new Date());
    await inTransaction(this.dataSource, ctx, async (q) => {
      await this.store.append(q, checkpoint, ctx?.principal.userId ?? null);
      if (ctx) {
        await recordAudit(
          q,
          ctx,
          { action: 'audit.checkpoint', resourceType: 'audit_checkpoint', resourceId: checkpoint.sequence.toString(), responseData: { row_hash: head.rowHash } },
          this.redactor,
        );
      }
    });
    return { checkpoint, rowsVerified: result.rowsChecked };
  }

  start(intervalMs: number): void {
    if (!this.signer) {
      this.logger.warn('AUDIT_CHECKPOINT_KEY is not set: the audit chain head is never signed, so truncation of its newest rows goes undetected');
      return;
    }
    if (intervalMs <= 0) return;
    this.timer = setInterval(() => {
      this.running = this.signHead(undefined).then(
        (made) => made && this.logger.info({ sequence: made.checkpoint.sequence.toString() }, 'audit chain checkpoint signed'),
        (err: Error) =>
          err instanceof FailedPreconditionError
            ? this.logger.error({ err: err.message }, 'audit chain checkpoint refused')
            : this.logger.warn({ err: err.message }, 'audit chain checkpoint failed; retrying next interval'),
      );
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
