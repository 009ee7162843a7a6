/**
 * Resources of the service processes, read from /proc: resident memory and
 * open file descriptors, sampled while a scenario runs.
 */
import * as fs from 'node:fs';

/** Resident set size in bytes (VmRSS), or undefined once the process is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Open file descriptors (sockets included), or undefined once the process is gone. */
export function openFds(pid: number): number | undefined {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

export const mb = (bytes: number | undefined): number => Math.round(((bytes ?? 0) / 1024 / 1024) * 10) / 10;

interface Sampled {
  name: string;
  pid: number;
}

export interface RssSample {
  at: number;
  rss: Record<string, number>;
}

/**
 * Samples the RSS of the processes `current()` returns (by name, so a
 * restarted service keeps its series) every `intervalMs`, keeping the peak
 * and the series.
 */
export class RssSampler {
  readonly samples: RssSample[] = [];
  private readonly peaks = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly current: () => Sampled[],
    private readonly intervalMs = 500,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /** Peak RSS in bytes per process name. */
  peak(): Record<string, number> {
    return Object.fromEntries(this.peaks);
  }

  private sample(): void {
    const rss: Record<string, number> = {};
    for (const p of this.current()) {
      const bytes = rssBytes(p.pid);
      if (bytes === undefined) continue;
      rss[p.name] = bytes;
      this.peaks.set(p.name, Math.max(this.peaks.get(p.name) ?? 0, bytes));
    }
    this.samples.push({ at: Date.now(), rss });
  }
}
