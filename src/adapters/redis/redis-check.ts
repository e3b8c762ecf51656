import type { Redis } from 'ioredis';
import type { DependencyCheck } from '../../health/dependency-check.ts';

/**
 * Reports the Redis version and eviction policy. Anything but `noeviction` is
 * unhealthy: BullMQ's keys must never be evicted under memory pressure. When Redis
 * cannot be reached, the status names the address and the socket error rather
 * than ioredis's retry bookkeeping.
 */
export function redisCheck(redis: Redis): DependencyCheck {
  let lastConnectionError: Error | undefined;
  redis.on('error', (error: Error) => {
    lastConnectionError = error;
  });
  return async () => {
    try {
      const info = await redis.info('server');
      const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
      const policy = ((await redis.config('GET', 'maxmemory-policy')))[1] ?? 'unknown';
      const healthy = policy === 'noeviction';
      return {
        name: 'redis',
        healthy,
        detail: `redis ${version}, maxmemory-policy ${policy}${healthy ? '' : ' (must be noeviction so queued jobs are never evicted)'}`,
      };
    } catch (error) {
      if (redis.status === 'ready' || lastConnectionError === undefined) throw error;
      const { host, port } = redis.options;
      throw new Error(`cannot connect to ${host ?? '?'}:${port ?? '?'}: ${lastConnectionError.message}`, { cause: error });
    }
  };
}

/** Readiness: Redis answers PING on this connection (which fails fast while it is down). */
export function redisReadiness(redis: Redis): DependencyCheck {
  return async () => {
    await redis.ping();
    return { name: 'redis', healthy: true, detail: `PING answered (${redis.status})` };
  };
}
