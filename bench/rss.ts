/**
 * Resident set size of a process, from /proc/<pid>/status (Linux).
 */
import { readFile } from 'node:fs/promises';

export async function readRssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

/** Samples RSS on a fixed interval and keeps the peak. */
export class RssSampler {
  private peak = 0;
  private samples = 0;
  private timer: NodeJS.Timeout | undefined;
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 100,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.pending = this.sample();
    }, this.intervalMs);
  }

  async stop(): Promise<{ peakKiB: number; samples: number }> {
    clearInterval(this.timer);
    await this.pending;
    await this.sample();
    return { peakKiB: this.peak, samples: this.samples };
  }

  private async sample(): Promise<void> {
    try {
      const rss = await readRssKiB(this.pid);
      this.samples++;
      if (rss > this.peak) this.peak = rss;
    } catch {
      // The process is gone; whoever waits on it reports that.
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
