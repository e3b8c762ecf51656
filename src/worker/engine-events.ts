import type { Clock, ContainerExit, ContainerRuntime, EventWatch } from '../domain/ports.ts';
import type { Logger } from '../observability/logger.ts';

/**
 * Exits this close to the engine going away (its event stream ending) or coming
 * back are the engine's doing: a stopping engine stops every container, and one
 * that comes back after a hard stop kills what it finds.
 */
export const ENGINE_DISRUPTION_MS = 30_000;

export interface EngineListener {
  /** A ctfleet container exited or was removed. */
  onExit(exit: ContainerExit): void;
  /** The stream is (again) followed: events may have been missed until now. */
  onConnected(): void;
  /** The stream ended or could not be opened: the engine went away. */
  onDisconnected(): void;
}

/**
 * Follows Docker's event stream for ctfleet's containers, reconnecting with a
 * capped backoff, and tells whether the engine is disrupted (away, or back for
 * less than {@link ENGINE_DISRUPTION_MS}).
 */
export class EngineEvents {
  private readonly runtime: ContainerRuntime;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private watch: EventWatch | undefined;
  private following: Promise<void> | undefined;
  private closed = false;
  /** When the stream came back after it ended: 0 if it never ended, Infinity while it is down. */
  private backAt = 0;

  constructor(deps: { runtime: ContainerRuntime; clock: Clock; logger: Logger }) {
    this.runtime = deps.runtime;
    this.clock = deps.clock;
    this.logger = deps.logger;
  }

  start(listener: EngineListener): void {
    this.following = this.follow(listener);
  }

  /** True while exits are blamed on the engine. */
  isDisrupted(): boolean {
    return this.clock.now() - this.backAt < ENGINE_DISRUPTION_MS;
  }

  private async follow(listener: EngineListener): Promise<void> {
    let backoffMs = 500;
    while (!this.isClosed()) {
      try {
        this.watch = await this.runtime.watchExits((exit) => {
          listener.onExit(exit);
        });
        if (this.backAt === Number.POSITIVE_INFINITY) this.backAt = this.clock.now();
        backoffMs = 500;
        listener.onConnected();
        await this.watch.ended;
        if (!this.isClosed()) {
          this.logger.warn('Docker event stream ended; reconnecting');
          this.wentAway(listener);
        }
      } catch (error) {
        this.logger.warn({ err: error }, 'Following Docker events failed; retrying');
        this.wentAway(listener);
      }
      if (this.isClosed()) break;
      await new Promise((resolve) => setTimeout(resolve, backoffMs));
      backoffMs = Math.min(backoffMs * 2, 10_000);
    }
  }

  private wentAway(listener: EngineListener): void {
    this.backAt = Number.POSITIVE_INFINITY;
    listener.onDisconnected();
  }

  /** A method, not the field: the flag changes across awaits. */
  private isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watch?.close();
    await this.following;
  }
}
