import { SYSTEM_CLOCK, type Clock, type HeartbeatStore, type WorkerBeat } from '../domain/ports.ts';
import type { Logger } from '../observability/logger.ts';

export const HEARTBEAT_INTERVAL_MS = 5_000;
/** Three missed beats and the node counts as gone. */
export const HEARTBEAT_TTL_MS = 3 * HEARTBEAT_INTERVAL_MS;

/**
 * Beats every interval until closed. A failed beat is logged and retried at the
 * next interval; it never stops the worker.
 */
export class Heartbeat {
  private readonly store: HeartbeatStore;
  private readonly describe: () => Promise<Omit<WorkerBeat, 'beatAt'>>;
  private readonly logger: Logger;
  private readonly onBeat: (ok: boolean) => void;
  private readonly clock: Clock;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(store: HeartbeatStore, describe: () => Promise<Omit<WorkerBeat, 'beatAt'>>, logger: Logger, onBeat: (ok: boolean) => void = () => undefined, clock: Clock = SYSTEM_CLOCK) {
    this.store = store;
    this.clock = clock;
    this.describe = describe;
    this.logger = logger;
    this.onBeat = onBeat;
  }

  async start(): Promise<void> {
    await this.beatOnce();
    this.schedule();
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      void this.beatOnce().then(() => {
        this.schedule();
      });
    }, HEARTBEAT_INTERVAL_MS);
    this.timer.unref();
  }

  private async beatOnce(): Promise<void> {
    try {
      const state = await this.describe();
      await this.store.beat({ ...state, beatAt: new Date(this.clock.now()).toISOString() }, HEARTBEAT_TTL_MS);
      this.onBeat(true);
    } catch (error) {
      this.onBeat(false);
      this.logger.warn({ err: error }, 'Sending the worker heartbeat failed; retrying next interval');
    }
  }

  /** Stops beating and removes the entry, so the node reads as having left. */
  async close(node: string): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.store.remove(node).catch((error: unknown) => {
      this.logger.warn({ err: error }, 'Removing the worker heartbeat failed; it expires by itself');
    });
  }
}
