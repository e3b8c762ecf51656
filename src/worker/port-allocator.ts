import type { PortRange } from '../domain/port-range.ts';

/**
 * Hands out host ports from a node's range. Ports in use come from the labels of
 * the node's containers; ports handed out but not yet visible there are held as
 * reservations until released, so concurrent starts on one worker never collide.
 */
export class PortAllocator {
  private readonly range: PortRange;
  private readonly reserved = new Set<number>();
  private readonly random: () => number;

  constructor(range: PortRange, random: () => number = Math.random) {
    this.range = range;
    this.random = random;
  }

  /**
   * Picks `count` distinct free ports, preferring `preferred` ones (a container
   * being replaced keeps its endpoint when it can). Returns undefined when the
   * range has too few free ports.
   */
  allocate(count: number, inUse: ReadonlySet<number>, preferred: readonly number[] = []): number[] | undefined {
    const isFree = (port: number): boolean => !inUse.has(port) && !this.reserved.has(port) && port >= this.range.min && port <= this.range.max;
    const chosen: number[] = [];
    for (const port of preferred) {
      if (chosen.length < count && isFree(port) && !chosen.includes(port)) chosen.push(port);
    }
    const size = this.range.max - this.range.min + 1;
    // Random probing spreads instances over the range; a linear scan from a random
    // start finishes the job when the range is nearly full.
    for (let tries = 0; chosen.length < count && tries < 64; tries += 1) {
      const port = this.range.min + Math.floor(this.random() * size);
      if (isFree(port) && !chosen.includes(port)) chosen.push(port);
    }
    const start = Math.floor(this.random() * size);
    for (let i = 0; chosen.length < count && i < size; i += 1) {
      const port = this.range.min + ((start + i) % size);
      if (isFree(port) && !chosen.includes(port)) chosen.push(port);
    }
    if (chosen.length < count) return undefined;
    for (const port of chosen) this.reserved.add(port);
    return chosen;
  }

  /** Frees ports that were never used (the create failed). */
  release(ports: readonly number[]): void {
    for (const port of ports) this.reserved.delete(port);
  }

  /**
   * Marks ports as used by a container just created. They stay reserved for
   * `graceMs`: another start may have listed the node's containers just before
   * this one existed, and must still not pick its ports.
   */
  commit(ports: readonly number[], graceMs = 60_000): void {
    const timer = setTimeout(() => {
      this.release(ports);
    }, graceMs);
    timer.unref();
  }
}

