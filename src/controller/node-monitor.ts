import type { LiveNodeSource } from '../domain/ports.ts';
import type { Logger } from '../observability/logger.ts';
import type { NodePolicy } from './plan.ts';

export interface NodeMonitorOptions {
  /** A node counts as lost once its heartbeat has been missing this long, as this process saw it. */
  lostAfterMs: number;
  pollMs: number;
  onNodeLost: NodePolicy['onNodeLost'];
}

/**
 * Tells the planner which nodes are lost. A node is lost when this process has
 * seen its heartbeat missing, in consecutive successful reads, for `lostAfterMs`.
 * Judging by its own observation (not by timestamps the workers wrote) means
 * clocks need not agree, and two rules keep outages from looking like lost nodes:
 * while Redis cannot be read nothing new is declared lost, and after a gap (or a
 * Redis that lost every key) every node's clock starts again from the first good
 * read, so a wiped heartbeat that returns within the grace period is never lost.
 */
export class NodeMonitor implements NodePolicy {
  readonly onNodeLost: NodePolicy['onNodeLost'];
  private readonly source: LiveNodeSource;
  private readonly options: NodeMonitorOptions;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly known = new Set<string>();
  private readonly missingSince = new Map<string, number>();
  private lost = new Set<string>();
  private lastReadOk = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(source: LiveNodeSource, options: NodeMonitorOptions, logger: Logger, now: () => number = Date.now) {
    this.source = source;
    this.options = options;
    this.onNodeLost = options.onNodeLost;
    this.logger = logger;
    this.now = now;
  }

  isNodeLost(node: string): boolean {
    this.known.add(node);
    return this.lost.has(node);
  }

  /** Nodes lost right now. */
  lostNodes(): string[] {
    return [...this.lost];
  }

  /** How many nodes this process knows, and how many of them are lost. */
  counts(): { live: number; lost: number } {
    return { live: this.known.size - this.lost.size, lost: this.lost.size };
  }

  /**
   * Folds in one read of the live nodes (`undefined`: the read failed) and
   * returns the nodes that became lost or came back.
   */
  observe(live: Set<string> | undefined): string[] {
    const now = this.now();
    if (live === undefined) {
      this.lastReadOk = false;
      return [];
    }
    for (const node of live) this.known.add(node);
    for (const node of this.known) {
      if (live.has(node)) this.missingSince.delete(node);
      // After a gap the clock restarts, except for nodes already lost: they stay lost.
      else if (!this.missingSince.has(node) || (!this.lastReadOk && !this.lost.has(node))) this.missingSince.set(node, now);
    }
    this.lastReadOk = true;
    const lost = new Set([...this.missingSince].filter(([, since]) => now - since >= this.options.lostAfterMs).map(([node]) => node));
    const changed = [...new Set([...lost, ...this.lost])].filter((node) => lost.has(node) !== this.lost.has(node));
    this.lost = lost;
    return changed;
  }

  /** Reads the heartbeats every `pollMs`; `onChange` gets the nodes that became lost or came back. */
  start(onChange: (nodes: string[]) => void): void {
    const tick = async (): Promise<void> => {
      let live: Set<string> | undefined;
      try {
        live = await this.source.liveNodes();
      } catch (error) {
        this.logger.warn({ err: error }, 'Reading worker heartbeats failed; no node is declared lost until they can be read');
      }
      const changed = this.observe(live);
      for (const node of changed) {
        if (this.lost.has(node)) this.logger.warn({ node }, `Node ${node} is lost: no heartbeat for ${Math.round(this.options.lostAfterMs / 1000)} s`);
        else this.logger.info({ node }, `Node ${node} is back`);
      }
      if (changed.length > 0) onChange(changed);
    };
    const loop = (): void => {
      if (this.closed) return;
      this.timer = setTimeout(() => {
        void tick().then(loop);
      }, this.options.pollMs);
    };
    void tick().then(loop);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
