import { SYSTEM_CLOCK, type Clock } from '../domain/ports.ts';

/**
 * The shortest requeue. A pass that asks to run again at once still waits this
 * long, so a key that keeps asking can never starve the event loop.
 */
export const MIN_REQUEUE_MS = 10;

/** What processing a key asks for next. */
export interface WorkResult {
  /**
   * Look at the key again after this long; every pass of a live object ends with
   * one. `null` forgets the key (its object is gone): only a new add brings it back.
   */
  requeueAfterMs: number | null;
}

export interface WorkQueueOptions {
  concurrency: number;
  /** First retry delay after a failed pass; doubles per consecutive failure. */
  baseBackoffMs: number;
  maxBackoffMs: number;
}

/**
 * A keyed work queue in the manner of client-go's: a key waits at most once,
 * is never processed twice at the same time, and a key added while it is being
 * processed runs again right after. Failures back off per key, exponentially.
 *
 * Guarantees: after `add(key)` the key is processed at least once more, unless the
 * queue is closed. Assumptions: `process` never needs two passes at once for one key.
 */
export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly waiting = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private readonly options: WorkQueueOptions;
  private readonly clock: Clock;
  private process: ((key: string) => Promise<WorkResult>) | undefined;
  private onError: (key: string, error: unknown) => void = () => undefined;
  private running = 0;
  private closed = false;
  private idle: (() => void) | undefined;

  constructor(options: WorkQueueOptions, clock: Clock = SYSTEM_CLOCK) {
    this.options = options;
    this.clock = clock;
  }

  /** Queues `key` now. Cancels nothing: a pending delayed add still fires. */
  add(key: string): void {
    if (this.closed) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.waiting.has(key)) return;
    this.waiting.add(key);
    this.ready.push(key);
    this.pump();
  }

  /** Queues `key` after `delayMs`; an earlier pending delayed add wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.closed) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + delayMs;
    const existing = this.timers.get(key);
    if (existing !== undefined && existing.at <= at) return;
    if (existing !== undefined) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Starts processing with `process`; `onError` hears about every failed pass. */
  start(process: (key: string) => Promise<WorkResult>, onError: (key: string, error: unknown) => void): void {
    this.process = process;
    this.onError = onError;
    this.pump();
  }

  /** Keys waiting to be processed now (metric: work-queue depth). */
  depth(): number {
    return this.ready.length;
  }

  /** Stops taking keys and resolves once the passes in flight have finished. */
  async close(): Promise<void> {
    this.closed = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.ready.length = 0;
    this.waiting.clear();
    if (this.running === 0) return;
    await new Promise<void>((resolve) => {
      this.idle = resolve;
    });
  }

  private pump(): void {
    const process = this.process;
    if (process === undefined) return;
    while (!this.closed && this.running < this.options.concurrency && this.ready.length > 0) {
      const key = this.ready.shift() as string;
      this.waiting.delete(key);
      this.processing.add(key);
      this.running += 1;
      void this.runOne(key, process);
    }
  }

  private async runOne(key: string, process: (key: string) => Promise<WorkResult>): Promise<void> {
    let next: number | null;
    try {
      const result = await process(key);
      this.failures.delete(key);
      next = result.requeueAfterMs;
    } catch (error) {
      const count = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, count);
      next = Math.min(this.options.baseBackoffMs * 2 ** (count - 1), this.options.maxBackoffMs);
      this.onError(key, error);
    } finally {
      this.processing.delete(key);
      this.running -= 1;
    }
    if (this.dirty.delete(key)) this.add(key);
    else if (next !== null) this.addAfter(key, Math.max(next, MIN_REQUEUE_MS));
    if (this.closed && this.running === 0) this.idle?.();
    this.pump();
  }
}
