// What every role's composition root shares. Each role's root is its own module,
// loaded only by the processes that run the role (src/app/run.ts): a controller
// never loads dockerode, a worker never loads express's API routes.
import { createRedisConnection } from '../adapters/redis/redis-connection.ts';
import type { RuntimeConfig } from '../config/config.ts';
import type { Logger } from '../observability/logger.ts';
import type { DependencyCheck } from '../health/dependency-check.ts';

/** Something started that must be closed on shutdown. */
export interface Component {
  name: string;
  /** What `/readyz` checks for this component. */
  readiness: Record<string, DependencyCheck>;
  close(): Promise<void>;
}

type RedisConnection = ReturnType<typeof createRedisConnection>;

/**
 * A fail-fast command connection and a blocking one for BullMQ, each logging its
 * connection errors (ioredis reconnects by itself; an unheard `error` would crash).
 */
export function openRedis(config: RuntimeConfig, logger: Logger): { command: RedisConnection; blocking: RedisConnection } {
  return { command: openConnection(config, logger, 'command'), blocking: openConnection(config, logger, 'blocking') };
}

export function openConnection(config: RuntimeConfig, logger: Logger, kind: 'command' | 'blocking'): RedisConnection {
  const connection = createRedisConnection(config.redis, kind);
  connection.on('error', (error: Error) => {
    logger.warn({ err: error }, 'Redis connection failed; retrying');
  });
  return connection;
}
