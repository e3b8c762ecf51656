import type { Redis } from 'ioredis';
import type { ObservedState, ObservedStateStore } from '../../domain/ports.ts';

/** Observed state expires a day after its last report: Kubernetes stays the record. */
export const OBSERVED_TTL_SECONDS = 86_400;

/** {@link ObservedStateStore} as one Redis hash per instance uid, under the deployment's prefix. */
export class RedisObservedStateStore implements ObservedStateStore {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  static keyFor(prefix: string, uid: string): string {
    return `${prefix}:observed:${uid}`;
  }

  async lostSince(node: string): Promise<boolean> {
    // Set only when missing: OK means nothing was there, so neither is anything recorded before.
    return (await this.redis.set(`${this.prefix}:observed-marker:${node}`, new Date().toISOString(), 'NX')) === 'OK';
  }

  async record(uid: string, state: ObservedState): Promise<void> {
    const key = RedisObservedStateStore.keyFor(this.prefix, uid);
    const fields: Record<string, string> = {
      namespace: state.namespace,
      name: state.name,
      node: state.node,
      state: state.state,
      reason: state.reason,
      generation: String(state.generation),
      containerId: state.containerId ?? '',
      endpoints: JSON.stringify(state.endpoints ?? []),
      updatedAt: new Date().toISOString(),
    };
    await this.redis.multi().del(key).hset(key, fields).expire(key, OBSERVED_TTL_SECONDS).exec();
  }
}
