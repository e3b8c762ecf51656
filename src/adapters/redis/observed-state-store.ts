import type { Redis } from 'ioredis';
import { OBSERVED_REFRESH_MS, type ObservedState, type ObservedStateStore } from '../../domain/ports.ts';

/** Observed state expires a day after its last report: Kubernetes stays the record. */
export const OBSERVED_TTL_SECONDS = 86_400;
/** A node's marker lives one refresh interval past the sweep that last found it missing. */
const MARKER_TTL_SECONDS = OBSERVED_REFRESH_MS / 1000;

/** {@link ObservedStateStore} as one Redis hash per instance uid, under the deployment's prefix. */
export class RedisObservedStateStore implements ObservedStateStore {
  private readonly redis: Redis;
  private readonly prefix: string;
  /** The Redis server's run id at the last check. */
  private runId: string | undefined;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  static keyFor(prefix: string, uid: string): string {
    return `${prefix}:observed:${uid}`;
  }

  /**
   * The marker is set only when missing (OK: nothing was there, so neither is
   * anything recorded before) and expires with the refresh interval, so a node
   * that left leaves nothing behind. A Redis restarted from its append-only file
   * or a backup keeps the marker but may lack the last writes: a new `run_id`
   * counts as lost too.
   */
  async lostSince(node: string): Promise<boolean> {
    const [marked, server] = await Promise.all([
      this.redis.set(`${this.prefix}:observed-marker:${node}`, new Date().toISOString(), 'EX', MARKER_TTL_SECONDS, 'NX'),
      this.redis.info('server'),
    ]);
    const runId = /^run_id:(\w+)/m.exec(server)?.[1];
    const restarted = this.runId !== undefined && runId !== this.runId;
    this.runId = runId;
    return marked === 'OK' || restarted;
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
