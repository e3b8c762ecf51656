/**
 * A token bucket per key (a team): `perMinute` requests a minute, bursts up to
 * the same number. Pure apart from the clock it is given; buckets that refilled
 * completely are forgotten, so memory follows the number of active teams.
 */
export class RateLimiter {
  private readonly perMinute: number;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(perMinute: number) {
    this.perMinute = perMinute;
  }

  take(key: string, now: number): { ok: true } | { ok: false; retryAfterSeconds: number } {
    const ratePerMs = this.perMinute / 60_000;
    const bucket = this.buckets.get(key) ?? { tokens: this.perMinute, at: now };
    const tokens = Math.min(this.perMinute, bucket.tokens + (now - bucket.at) * ratePerMs);
    if (tokens < 1) {
      this.buckets.set(key, { tokens, at: now });
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / ratePerMs / 1000)) };
    }
    this.buckets.set(key, { tokens: tokens - 1, at: now });
    if (this.buckets.size > 10_000) this.forgetFull(now);
    return { ok: true };
  }

  private forgetFull(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.at) * (this.perMinute / 60_000) >= this.perMinute) this.buckets.delete(key);
    }
  }
}
