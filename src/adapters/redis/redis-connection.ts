import { Redis } from 'ioredis';
import type { RedisConfig } from '../../config/config.ts';

/**
 * How a connection behaves when Redis is away. BullMQ workers block on Redis and
 * must wait for it forever (`maxRetriesPerRequest: null`); producers and one-off
 * commands fail after one reconnection attempt so the caller can report and back
 * off. Both queue commands issued before the lazy first connect completes.
 */
export type RedisRole = 'blocking' | 'command';

/** Opens an ioredis connection for the given role. Connects lazily on first command. */
export function createRedisConnection(config: RedisConfig, role: RedisRole): Redis {
  return new Redis(config.url, {
    lazyConnect: true,
    maxRetriesPerRequest: role === 'blocking' ? null : 1,
    connectTimeout: 5_000,
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 5_000),
  });
}
