/**
 * A service's grpc.health.v1 status over time: polled every 100 ms, each
 * change recorded, so a scenario can show SERVING → NOT_SERVING → SERVING.
 */
import { checkHealth } from '@mcp/runtime';

export type ObservedHealth = 'SERVING' | 'NOT_SERVING' | 'UNKNOWN' | 'SERVICE_UNKNOWN' | 'UNREACHABLE';

export class HealthTimeline {
  /** Each distinct status in the order seen (consecutive repeats collapsed). */
  readonly changes: Array<{ status: ObservedHealth; at: number }> = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    readonly address: string,
    private readonly intervalMs = 100,
  ) {
    this.loop = this.poll();
  }

  get current(): ObservedHealth | undefined {
    return this.changes[this.changes.length - 1]?.status;
  }

  /** The statuses seen, in order, e.g. ['SERVING', 'NOT_SERVING', 'SERVING']. */
  get sequence(): ObservedHealth[] {
    return this.changes.map((c) => c.status);
  }

  /** How many times the status went from SERVING to NOT_SERVING and later back to SERVING. */
  get recoveries(): number {
    let n = 0;
    let state: 'before' | 'serving' | 'down' = 'before';
    for (const s of this.sequence) {
      if (s === 'SERVING') {
        if (state === 'down') n++;
        state = 'serving';
      } else if (s === 'NOT_SERVING' && state === 'serving') {
        state = 'down';
      }
    }
    return n;
  }

  async waitFor(status: ObservedHealth, timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.current !== status) {
      if (Date.now() > until) throw new Error(`${this.address}: not ${status} within ${timeoutMs} ms (seen ${this.sequence.join(' → ')})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async poll(): Promise<void> {
    while (!this.stopped) {
      const status: ObservedHealth = await checkHealth(this.address, '', { deadlineMs: 1_000 }).catch(() => 'UNREACHABLE' as const);
      if (status !== this.current) this.changes.push({ status, at: Date.now() });
      await new Promise((r) => setTimeout(r, this.intervalMs));
    }
  }
}
