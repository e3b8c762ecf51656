/** How often one job's progress reaches Redis at most. */
export const PROGRESS_INTERVAL_MS = 250;

export interface JobStep {
  percent: number;
  step: string;
}

/**
 * Writes one job's progress to Redis at most once per interval, always the latest
 * step, in order. A start reports five steps within a few hundred milliseconds;
 * each write is a Lua script and an event on the queue's stream that every
 * listener (the controller, the dashboard) reads, so steps that a later one
 * replaces within the interval are never written. `flush` writes the last step
 * and waits for every write: a finished job always shows its last step, and
 * nothing reported after it is written.
 *
 * A refused write (Redis away, the job's lock lost) costs that step's display,
 * never the job: `onError` hears of it.
 */
export class ProgressWriter {
  private readonly write: (step: JobStep) => Promise<void>;
  private readonly onError: (error: unknown, step: JobStep) => void;
  private readonly intervalMs: number;
  private latest: JobStep | undefined;
  private sent: JobStep | undefined;
  private timer: NodeJS.Timeout | undefined;
  private writes: Promise<void> = Promise.resolve();
  private flushed = false;

  constructor(write: (step: JobStep) => Promise<void>, onError: (error: unknown, step: JobStep) => void, intervalMs = PROGRESS_INTERVAL_MS) {
    this.write = write;
    this.onError = onError;
    this.intervalMs = intervalMs;
  }

  /** Records a step; it reaches Redis within the interval unless a later one replaces it. */
  report(step: JobStep): void {
    // After flush the job is over (or handed back): a late step would land on a job no longer ours.
    if (this.flushed) return;
    this.latest = step;
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.send();
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Writes the last step if it is not written yet; resolves when every write has landed or failed. */
  flush(): Promise<void> {
    this.flushed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.send();
    return this.writes;
  }

  private send(): void {
    const step = this.latest;
    if (step === undefined || step === this.sent) return;
    this.sent = step;
    this.writes = this.writes.then(() => this.write(step)).catch((error: unknown) => {
      this.onError(error, step);
    });
  }
}
