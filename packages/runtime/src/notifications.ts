import { Client } from 'pg';
import type { Logger } from './logger';

const MAX_RECONNECT_DELAY_MS = 5_000;

/**
 * One LISTEN connection per process, shared by every live stream (tails,
 * watches). Writers `NOTIFY` in the transaction that inserts rows, so the
 * notification arrives exactly when the rows become visible; streams wake up
 * and read from their cursor. Notifications carry no data: the table is the
 * source of truth, so a lost notification delays a stream, never corrupts it
 * (waiters are also woken on every reconnect).
 */
export class NotificationHub {
  private client: Client | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly listeners = new Set<(channel: string, payload: string | undefined) => void>();
  private stopped = false;
  private reconnectDelayMs = 100;
  private reconnectTimer: NodeJS.Timeout | undefined;

  private readonly channels: Set<string>;

  constructor(
    private readonly url: string,
    channels: readonly string[],
    private readonly logger: Logger,
  ) {
    this.channels = new Set(channels);
  }

  /** Listens on one more channel, now if connected and after every reconnect. */
  addChannel(channel: string): void {
    if (this.channels.has(channel)) return;
    this.channels.add(channel);
    const client = this.client;
    client?.query(`LISTEN ${client.escapeIdentifier(channel)}`).catch(() => undefined);
  }

  async start(): Promise<void> {
    await this.connect();
  }

  /** Resolves on the next notification on any channel, after `timeoutMs`, or when `signal` aborts. */
  wait(signal: AbortSignal, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal.addEventListener('abort', done, { once: true });
      this.waiters.add(done);
    });
  }

  /** Sees every notification's payload before waiters wake. */
  subscribe(listener: (channel: string, payload: string | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.wakeAll();
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }

  private async connect(): Promise<void> {
    const client = new Client({ connectionString: this.url, application_name: 'mcp-notifications' });
    client.on('notification', (n) => {
      for (const listener of this.listeners) listener(n.channel, n.payload);
      this.wakeAll();
    });
    client.on('error', (err) => {
      this.logger.warn({ err: err.message }, 'notification connection lost');
      this.scheduleReconnect(client);
    });
    client.on('end', () => this.scheduleReconnect(client));
    try {
      await client.connect();
      for (const channel of this.channels) await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
    } catch (err) {
      client.end().catch(() => undefined);
      this.scheduleReconnect(client);
      throw err;
    }
    this.client = client;
    this.reconnectDelayMs = 100;
    this.wakeAll(); // anything committed while we were not listening
  }

  private scheduleReconnect(failed: Client): void {
    // 'error' and 'end' both fire for one failure: reconnect once.
    if (this.stopped || this.reconnectTimer || (this.client !== undefined && this.client !== failed)) return;
    this.client = undefined;
    const delay = this.reconnectDelayMs;
    this.reconnectDelayMs = Math.min(delay * 2, MAX_RECONNECT_DELAY_MS);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.stopped || this.client) return;
      this.connect().catch((err: Error) => this.logger.debug({ err: err.message }, 'notification reconnect failed'));
    }, delay);
    this.reconnectTimer.unref();
  }
}
