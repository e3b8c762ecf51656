import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

/**
 * BullMQ Queue objects by name, opened on first use on one connection. Their
 * `error` events are heard (an unheard one would crash the process); the commands
 * themselves still reject, and callers handle that.
 */
export class QueueCache {
  private readonly queues = new Map<string, Queue>();
  private readonly connection: Redis;
  private readonly prefix: string;

  constructor(connection: Redis, prefix: string) {
    this.connection = connection;
    this.prefix = prefix;
  }

  /** The queue, and whether this call opened it. */
  open(name: string): { queue: Queue; opened: boolean } {
    const existing = this.queues.get(name);
    if (existing !== undefined) return { queue: existing, opened: false };
    const queue = new Queue(name, { connection: this.connection, prefix: this.prefix });
    queue.on('error', () => undefined);
    this.queues.set(name, queue);
    return { queue, opened: true };
  }

  entries(): [string, Queue][] {
    return [...this.queues];
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    this.queues.clear();
  }
}
