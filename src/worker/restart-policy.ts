export interface RestartPolicyOptions {
  /** Restarts allowed within the window; one more exit and the instance is CrashLoop. */
  limit: number;
  windowMs: number;
  /** Delay before the first restart; it doubles with each restart still in the window. */
  backoffMs: number;
  maxBackoffMs: number;
}

export type RestartDecision = { restart: true; attempt: number; delayMs: number } | { restart: false; restarts: number };

/**
 * Counts restarts per key (uid and generation, so a spec change starts afresh)
 * over a sliding window, and says whether and when to restart once more.
 */
export class RestartPolicy {
  private readonly options: RestartPolicyOptions;
  private readonly history = new Map<string, number[]>();

  constructor(options: RestartPolicyOptions) {
    this.options = options;
  }

  next(key: string, now: number): RestartDecision {
    const recent = (this.history.get(key) ?? []).filter((at) => now - at < this.options.windowMs);
    if (recent.length >= this.options.limit) {
      this.history.set(key, recent);
      return { restart: false, restarts: recent.length };
    }
    const delayMs = Math.min(this.options.backoffMs * 2 ** recent.length, this.options.maxBackoffMs);
    recent.push(now);
    this.history.set(key, recent);
    return { restart: true, attempt: recent.length, delayMs };
  }

  /**
   * Forgets restarts counted at or after `since`: their exits turned out to be
   * someone else's doing (the engine went away), not the container's.
   */
  forgiveSince(since: number): void {
    for (const [key, times] of this.history) {
      const kept = times.filter((at) => at < since);
      if (kept.length === 0) this.history.delete(key);
      else this.history.set(key, kept);
    }
  }

  /** Forgets keys whose restarts all left the window. */
  prune(now: number): void {
    for (const [key, times] of this.history) {
      if (times.every((at) => now - at >= this.options.windowMs)) this.history.delete(key);
    }
  }
}
