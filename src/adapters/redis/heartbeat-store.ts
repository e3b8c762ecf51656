import type { Redis } from 'ioredis';
import type { PoolCount } from '../../domain/pool.ts';
import type { HeartbeatStore, LiveNodeSource, PoolCountSource, WorkerBeat } from '../../domain/ports.ts';

/**
 * Heartbeats as one expiring hash per node (`<prefix>:worker:<node>`) plus a
 * sorted set of nodes by last beat (`<prefix>:workers`), so readers list workers
 * without scanning keys.
 */
export class RedisHeartbeatStore implements HeartbeatStore, LiveNodeSource, PoolCountSource {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  static workerKey(prefix: string, node: string): string {
    return `${prefix}:worker:${node}`;
  }

  static workersKey(prefix: string): string {
    return `${prefix}:workers`;
  }

  async beat(beat: WorkerBeat, ttlMs: number): Promise<void> {
    const key = RedisHeartbeatStore.workerKey(this.prefix, beat.node);
    await this.redis
      .multi()
      .hset(key, { ...beat, capacity: String(beat.capacity), running: String(beat.running), pools: JSON.stringify(beat.pools ?? []) })
      .pexpire(key, ttlMs)
      .zadd(RedisHeartbeatStore.workersKey(this.prefix), Date.parse(beat.beatAt), beat.node)
      .exec();
  }

  /** Nodes listed in the set whose heartbeat hash has not expired. */
  async liveNodes(): Promise<Set<string>> {
    const nodes = await this.redis.zrange(RedisHeartbeatStore.workersKey(this.prefix), '0', '-1');
    if (nodes.length === 0) return new Set();
    const pipeline = this.redis.pipeline();
    for (const node of nodes) pipeline.exists(RedisHeartbeatStore.workerKey(this.prefix, node));
    const results = (await pipeline.exec()) ?? [];
    return new Set(nodes.filter((_, i) => {
      const [error, exists] = results[i] ?? [null, 0];
      if (error !== null) throw error;
      return exists === 1;
    }));
  }

  /** Every node in the set with its last beat; `beat` is undefined once its hash expired. */
  async listWorkers(): Promise<{ node: string; lastBeatMs: number; beat: WorkerBeat | undefined }[]> {
    const entries = await this.redis.zrange(RedisHeartbeatStore.workersKey(this.prefix), '0', '-1', 'WITHSCORES');
    const nodes: { node: string; lastBeatMs: number }[] = [];
    for (let i = 0; i + 1 < entries.length; i += 2) nodes.push({ node: entries[i] ?? '', lastBeatMs: Number(entries[i + 1]) });
    return Promise.all(nodes.map(async ({ node, lastBeatMs }) => {
      const hash = await this.redis.hgetall(RedisHeartbeatStore.workerKey(this.prefix, node));
      const beat: WorkerBeat | undefined = hash.node === undefined
        ? undefined
        : { node, capacity: Number(hash.capacity), running: Number(hash.running), version: hash.version ?? '', startedAt: hash.startedAt ?? '', beatAt: hash.beatAt ?? '', pools: parsePools(hash.pools) };
      return { node, lastBeatMs, beat };
    }));
  }

  /** Pool counts of every worker whose heartbeat has not expired, summed per Challenge. */
  async poolCounts(): Promise<Map<string, { idle: number; target: number }>> {
    const sums = new Map<string, { idle: number; target: number }>();
    for (const { beat } of await this.listWorkers()) {
      for (const count of beat?.pools ?? []) {
        const sum = sums.get(count.challenge) ?? { idle: 0, target: 0 };
        sums.set(count.challenge, { idle: sum.idle + count.idle, target: sum.target + count.target });
      }
    }
    return sums;
  }

  async remove(node: string): Promise<void> {
    await this.redis.multi().del(RedisHeartbeatStore.workerKey(this.prefix, node)).zrem(RedisHeartbeatStore.workersKey(this.prefix), node).exec();
  }
}

/** A beat's pool counts; an older worker's beat (none) or a malformed one reads as no pools. */
function parsePools(text: string | undefined): PoolCount[] {
  if (text === undefined) return [];
  try {
    const value: unknown = JSON.parse(text);
    if (!Array.isArray(value)) return [];
    return value.flatMap((entry: unknown) => {
      const { challenge, idle, target } = (entry ?? {}) as Partial<Record<keyof PoolCount, unknown>>;
      return typeof challenge === 'string' && typeof idle === 'number' && typeof target === 'number' ? [{ challenge, idle, target }] : [];
    });
  } catch {
    return [];
  }
}
