import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { ClaimRecord } from '../../domain/pool.ts';
import type { PoolClaimStore } from '../../domain/ports.ts';

const recordSchema = z.object({
  uid: z.string().min(1),
  namespace: z.string().min(1),
  name: z.string().min(1),
  team: z.string(),
  generation: z.number().int().min(1),
  specHash: z.string().min(1),
  claimedAt: z.number(),
});

/**
 * {@link PoolClaimStore} as one Redis hash per node (`<prefix>:pool:<node>:claims`,
 * container id → the claim as JSON). HSETNX is the arbiter: of any number of
 * claims of one container, from any process, exactly one writes its record.
 * Entries live as long as their container (the worker forgets them on removal
 * and its sweep prunes those of containers gone behind its back), so the hash
 * is bounded by the node's containers.
 */
export class RedisPoolClaimStore implements PoolClaimStore {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  static keyFor(prefix: string, node: string): string {
    return `${prefix}:pool:${node}:claims`;
  }

  async claim(node: string, containerId: string, record: ClaimRecord): Promise<boolean> {
    return (await this.redis.hsetnx(RedisPoolClaimStore.keyFor(this.prefix, node), containerId, JSON.stringify(record))) === 1;
  }

  /** Every well-formed record; one that does not parse (written by hand, or a newer version) is left out. */
  async load(node: string): Promise<Map<string, ClaimRecord>> {
    const raw = await this.redis.hgetall(RedisPoolClaimStore.keyFor(this.prefix, node));
    const claims = new Map<string, ClaimRecord>();
    for (const [id, text] of Object.entries(raw)) {
      try {
        const parsed = recordSchema.safeParse(JSON.parse(text));
        if (parsed.success) claims.set(id, parsed.data);
      } catch {
        // Not JSON: not a claim this version made.
      }
    }
    return claims;
  }

  async forget(node: string, containerIds: readonly string[]): Promise<void> {
    if (containerIds.length === 0) return;
    await this.redis.hdel(RedisPoolClaimStore.keyFor(this.prefix, node), ...containerIds);
  }
}
