import type { Clock, ContainerInfo, ContainerRuntime } from '../domain/ports.ts';

/**
 * The node's ctfleet containers as last listed, shared by everyone who can use a
 * listing of some age. Docker walks and renders every container to answer one:
 * 84 ms of dockerd's CPU at 500 containers and 32 ms at 250 (docs/benchmark.md).
 * The sweep lists afresh every interval; port allocation and the heartbeat's count
 * take the sweep's answer while it is young enough instead of each listing on their
 * own, so a node in a burst lists about once a sweep interval, not three times.
 *
 * Guarantees: callers asking at once share one request; a listing that failed is
 * not kept (every caller waiting on it gets the error, the next one lists again);
 * {@link invalidate} makes the next caller list afresh.
 */
export class NodeListing {
  private readonly runtime: Pick<ContainerRuntime, 'listManaged'>;
  private readonly clock: Clock;
  /** The latest listing (`at`: when it began), possibly still under way. */
  private latest: { at: number; containers: Promise<ContainerInfo[]> } | undefined;
  private tookMs = 0;

  constructor(runtime: Pick<ContainerRuntime, 'listManaged'>, clock: Clock) {
    this.runtime = runtime;
    this.clock = clock;
  }

  /** A listing begun now (the sweep's: it decides what to repair from it). */
  fresh(): Promise<ContainerInfo[]> {
    const began = this.clock.now();
    const listing = {
      at: began,
      containers: this.runtime.listManaged().then((containers) => {
        this.tookMs = this.clock.now() - began;
        return containers;
      }),
    };
    listing.containers.catch(() => {
      if (this.latest === listing) this.latest = undefined;
    });
    this.latest = listing;
    return listing.containers;
  }

  /** The latest listing if it began at most `maxAgeMs` ago (one under way included), else a new one. */
  within(maxAgeMs: number): Promise<ContainerInfo[]> {
    if (this.latest !== undefined && this.clock.now() - this.latest.at <= maxAgeMs) return this.latest.containers;
    return this.fresh();
  }

  /** How long the last listing that answered took, in ms (0 before any): what a listing costs the engine now. */
  lastTookMs(): number {
    return this.tookMs;
  }

  /** Something the listing counted is gone (a container's ports to be reused): the next caller lists afresh. */
  invalidate(): void {
    this.latest = undefined;
  }
}
