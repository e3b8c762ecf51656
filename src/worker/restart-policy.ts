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

  /** Decides and, when it restarts, counts the restart. */
  next(key: string, now: number): RestartDecision {
    const decision = this.peek(key, now);
    if (decision.restart) this.record(key, now);
    return decision;
  }

  /** What {@link next} would decide now, counting nothing. */
  peek(key: string, now: number): RestartDecision {
    const recent = this.recent(key, now);
    if (recent.length >= this.options.limit) return { restart: false, restarts: recent.length };
    const delayMs = Math.min(this.options.backoffMs * 2 ** recent.length, this.options.maxBackoffMs);
    return { restart: true, attempt: recent.length + 1, delayMs };
  }

  /** Counts a restart at `now`. */
  record(key: string, now: number): void {
    this.history.set(key, [...this.recent(key, now), now]);
  }

  private recent(key: string, now: number): number[] {
    return (this.history.get(key) ?? []).filter((at) => now - at < this.options.windowMs);
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
