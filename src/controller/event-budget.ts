/**
 * How many Normal Events the controller records during a burst: a token bucket
 * (`burst` at once, then `perSecond`), so the opening minute of an event, when
 * hundreds of instances move at once, does not double the API server's writes
 * with "Scheduled" and "Running" Events. Warnings are always recorded. Pure but
 * for the clock it is given.
 */
export class EventBudget {
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly now: () => number;
  private tokens: number;
  private last: number;
  private dropped = 0;
  private readonly onDrop: () => void;

  constructor(options: { perSecond: number; burst: number; onDrop?: () => void }, now: () => number) {
    this.onDrop = options.onDrop ?? (() => undefined);
    this.perSecond = options.perSecond;
    this.burst = options.burst;
    this.now = now;
    this.tokens = options.burst;
    this.last = now();
  }

  /** True when an Event of this type may be recorded now. */
  take(type: 'Normal' | 'Warning'): boolean {
    if (type === 'Warning') return true;
    const at = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((at - this.last) / 1000) * this.perSecond);
    this.last = at;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.dropped += 1;
    this.onDrop();
    return false;
  }

  /** Normal Events left out so far. */
  droppedCount(): number {
    return this.dropped;
  }
}
