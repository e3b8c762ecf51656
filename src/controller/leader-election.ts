import type { LeaseRecord, LeaseStore } from '../domain/ports.ts';
import type { Logger } from '../observability/logger.ts';

export interface ElectionTiming {
  leaseDurationMs: number;
  /** How often the leader renews and standbys retry. */
  retryPeriodMs: number;
  /** A leader that could not renew for this long stops leading (< leaseDurationMs). */
  renewDeadlineMs: number;
}

export const DEFAULT_ELECTION_TIMING: ElectionTiming = { leaseDurationMs: 10_000, retryPeriodMs: 2_000, renewDeadlineMs: 8_000 };

/**
 * What to write, given the lease as read. Pure.
 *
 * Expiry is judged by when *this* process last saw the record change, not by the
 * record's renewTime, so clocks of different nodes never need to agree (client-go
 * does the same).
 */
export function decideLease(
  current: LeaseRecord | undefined,
  identity: string,
  observedChangeAt: number,
  now: Date,
  timing: ElectionTiming,
): { write: 'create' | 'update' | 'none'; record?: LeaseRecord } {
  const stamp = microTime(now);
  const durationSeconds = Math.round(timing.leaseDurationMs / 1000);
  if (current === undefined) {
    return { write: 'create', record: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: stamp, renewTime: stamp, leaseTransitions: 0 } };
  }
  if (current.holderIdentity === identity) {
    return { write: 'update', record: { ...current, renewTime: stamp, leaseDurationSeconds: durationSeconds } };
  }
  const free = current.holderIdentity === undefined || current.holderIdentity === '';
  const expired = now.getTime() - observedChangeAt > current.leaseDurationSeconds * 1000;
  if (!free && !expired) return { write: 'none' };
  return {
    write: 'update',
    record: { ...current, holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: stamp, renewTime: stamp, leaseTransitions: current.leaseTransitions + 1 },
  };
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * Leader election over a {@link LeaseStore}: only the leader runs the controller;
 * standbys retry every retry period and take over once the lease expires.
 *
 * Guarantees: `lead()` runs only while this process holds an unexpired lease as
 * far as it can tell; if renewing fails for renewDeadline, `stopLeading()` runs
 * before the lease can expire for the others. `close()` releases the lease so a
 * standby takes over at once instead of after the lease duration.
 */
export class LeaderElector {
  private readonly store: LeaseStore;
  private readonly identity: string;
  private readonly timing: ElectionTiming;
  private readonly logger: Logger;
  private observed: { key: string; at: number } = { key: '', at: 0 };
  private leading = false;
  private lastRenewal = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private transitions: Promise<void> = Promise.resolve();

  constructor(store: LeaseStore, identity: string, logger: Logger, timing: ElectionTiming = DEFAULT_ELECTION_TIMING) {
    this.store = store;
    this.identity = identity;
    this.logger = logger;
    this.timing = timing;
  }

  /** Starts electing; `lead` runs on becoming leader, `stopLeading` on losing it. */
  start(lead: () => Promise<void>, stopLeading: () => Promise<void>): void {
    const tick = async (): Promise<void> => {
      if (this.closed) return;
      const holds = await this.tryAcquireOrRenew().catch((error: unknown) => {
        this.logger.warn({ err: error }, 'Reading or writing the leader lease failed');
        return false;
      });
      const now = Date.now();
      if (holds) this.lastRenewal = now;
      if (holds && !this.leading) {
        this.leading = true;
        this.logger.info({ identity: this.identity }, 'Became the leader');
        this.transitions = this.transitions.then(lead).catch((error: unknown) => {
          this.logger.error({ err: error }, 'Starting to lead failed');
        });
      } else if (!holds && this.leading && now - this.lastRenewal > this.timing.renewDeadlineMs) {
        this.leading = false;
        this.logger.warn({ identity: this.identity }, 'Lost the leader lease; stopping the controller');
        this.transitions = this.transitions.then(stopLeading).catch((error: unknown) => {
          this.logger.error({ err: error }, 'Stopping after losing the lease failed');
        });
      }
      this.schedule(tick);
    };
    void tick();
  }

  /**
   * Schedules the next tick unless closed (a tick may have been mid-flight during
   * close()). The timer is deliberately not unref'd: for a standby it is the only
   * thing keeping the process alive.
   */
  private schedule(tick: () => Promise<void>): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void tick(), this.timing.retryPeriodMs);
  }

  isLeader(): boolean {
    return this.leading;
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const current = await this.store.read();
    const key = current === undefined ? '' : `${current.holderIdentity ?? ''}|${current.renewTime ?? ''}|${current.resourceVersion ?? ''}`;
    if (key !== this.observed.key) this.observed = { key, at: Date.now() };
    const decision = decideLease(current, this.identity, this.observed.at, new Date(), this.timing);
    if (decision.write === 'none' || decision.record === undefined) return false;
    return decision.write === 'create' ? this.store.create(decision.record) : this.store.update(decision.record);
  }

  /**
   * Stops electing, waits for a running lead/stop transition, runs `beforeRelease`
   * (stop the work the lease protects), then releases the lease if held.
   */
  async close(beforeRelease: () => Promise<void> = () => Promise.resolve()): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.transitions;
    await beforeRelease();
    if (!this.leading) return;
    this.leading = false;
    const current = await this.store.read().catch(() => undefined);
    if (current?.holderIdentity !== this.identity) return;
    await this.store
      .update({ ...current, holderIdentity: '', renewTime: microTime(new Date()), leaseDurationSeconds: 1 })
      .catch((error: unknown) => {
        this.logger.warn({ err: error }, 'Releasing the leader lease failed; a standby takes over when it expires');
      });
    this.logger.info('Released the leader lease');
  }
}
