import { KubeInstanceApi } from '../adapters/kubernetes/instance-api.ts';
import { KubeChallengeSource } from '../adapters/kubernetes/challenge-source.ts';
import { KubeFlagSecrets } from '../adapters/kubernetes/flag-secrets.ts';
import { loadKubeConfig } from '../adapters/kubernetes/kube-config.ts';
import { RedisTeamSlots } from '../adapters/redis/team-slots-store.ts';
import type { RuntimeConfig } from '../config/config.ts';
import type { Logger } from '../observability/logger.ts';
import { kubernetesReadiness } from '../adapters/kubernetes/kubernetes-check.ts';
import { redisReadiness } from '../adapters/redis/redis-check.ts';
import type { DependencyCheck } from '../health/dependency-check.ts';
import { readFileSync } from 'node:fs';
import express from 'express';
import { QueueAdmin } from '../adapters/queue/queue-admin.ts';
import { QueueBoard } from '../adapters/queue/queue-board.ts';
import { CHALLENGES_PATH, dashboard, DASHBOARD_PATH, QUEUE_BOARD_PATH } from '../dashboard/routes.ts';
import { viewOf } from '../domain/instance-view.ts';
import { KubePlatformInstances } from '../adapters/kubernetes/platform-instances.ts';
import { readSecretValue } from '../adapters/kubernetes/secrets.ts';
import { platformApi } from '../api/routes.ts';
import { startApiServer } from '../http/api-server.ts';
import { RateLimiter } from '../api/rate-limit.ts';
import { parseTokens, type ApiToken } from '../api/tokens.ts';
import { ConfigError } from '../config/config.ts';
import { type Component, openConnection } from './component.ts';

/**
 * Composition root of the platform API, served with the dashboard on a port of
 * its own (`CTFLEET_API_PORT`), never the health server's. Tokens come from a
 * file or a Secret (`name:role:token` lines); without either, the API refuses to
 * start. Redis holds the teams' instance slots, shared by every replica.
 */
export async function startApi(config: RuntimeConfig, logger: Logger): Promise<Component> {
  const kubeConfig = loadKubeConfig(config.kubeconfigPath);
  const settings = config.api;
  let tokens: ApiToken[];
  if (settings.tokensFile !== undefined) {
    tokens = parseTokens(readFileSync(settings.tokensFile, 'utf8'), settings.tokensFile);
  } else if (settings.tokensSecret !== undefined) {
    const { namespace, name } = settings.tokensSecret;
    const text = await readSecretValue(kubeConfig, namespace, name, 'tokens');
    if (text === undefined) throw new ConfigError([`CTFLEET_API_TOKENS_SECRET: Secret ${namespace}/${name} has no key "tokens"`]);
    tokens = parseTokens(text, `Secret ${namespace}/${name}`);
  } else {
    throw new ConfigError(['CTFLEET_API_TOKENS_FILE or CTFLEET_API_TOKENS_SECRET: the platform API needs tokens (name:role:token lines)']);
  }
  const openapi: unknown = JSON.parse(readFileSync(new URL('../../docs/api/openapi.json', import.meta.url), 'utf8'));
  const redis = openConnection(config, logger, 'command');
  const router = express.Router();
  router.use(platformApi({
    store: new KubePlatformInstances(kubeConfig),
    challenges: new KubeChallengeSource(kubeConfig),
    flags: new KubeFlagSecrets(kubeConfig, { keySecret: config.flags.keySecret }),
    slots: new RedisTeamSlots(redis, config.redis.prefix),
    tokens,
    limiter: new RateLimiter(settings.ratePerMinute),
    verifyLimiter: new RateLimiter(settings.verifyRatePerMinute),
    settings: { namespace: settings.namespace, maxInstancesPerTeam: settings.maxInstancesPerTeam },
    openapi,
    logger: logger.child({ component: 'api' }),
  }));
  logger.info({ namespace: settings.namespace, tokens: tokens.length }, 'Platform API serving /v1');
  const readiness: Record<string, DependencyCheck> = { kubernetes: kubernetesReadiness(kubeConfig), redis: redisReadiness(redis) };

  const queues = config.dashboard.enabled ? new QueueAdmin(redis, config.redis.prefix) : undefined;
  if (queues !== undefined) {
    const board = new QueueBoard(queues, QUEUE_BOARD_PATH, 'ctfleet queues', logger.child({ component: 'dashboard' }));
    const instances = new KubeInstanceApi(kubeConfig);
    const challenges = new KubeChallengeSource(kubeConfig);
    router.use(dashboard({
      tokens,
      instances: async () => (await instances.list(config.namespaces)).map(viewOf),
      challenges: () => challenges.list(config.namespaces),
      queueCounts: () => queues.stats(),
      board,
      readOnly: config.dashboard.readOnly,
      logger: logger.child({ component: 'dashboard' }),
    }));
    logger.info({ readOnly: config.dashboard.readOnly }, `Dashboard serving ${DASHBOARD_PATH}/, ${CHALLENGES_PATH}/ and ${QUEUE_BOARD_PATH}/`);
  }
  const server = await startApiServer(settings.host, settings.port, router, logger);
  return {
    name: 'api',
    readiness,
    close: async () => {
      // Requests first, then the connections they use.
      await server.close();
      await queues?.close();
      redis.disconnect();
    },
  };
}
