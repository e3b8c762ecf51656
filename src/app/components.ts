import { createDockerClient } from '../adapters/docker/docker-client.ts';
import { DockerRuntime } from '../adapters/docker/container-runtime.ts';
import { DockerNetworks } from '../adapters/docker/network-runtime.ts';
import { IptablesFirewall } from '../adapters/firewall/iptables.ts';
import { KubeInstanceApi } from '../adapters/kubernetes/instance-api.ts';
import { KubeInstanceCache } from '../adapters/kubernetes/instance-cache.ts';
import { KubeChallengeApi } from '../adapters/kubernetes/challenge-api.ts';
import { KubeChallengeCache, KubeChallengeSource } from '../adapters/kubernetes/challenge-source.ts';
import { KubeFlagSecrets } from '../adapters/kubernetes/flag-secrets.ts';
import { loadKubeConfig } from '../adapters/kubernetes/kube-config.ts';
import { BullJobQueue } from '../adapters/queue/bullmq-job-queue.ts';
import { BullWorkerPool } from '../adapters/queue/bullmq-worker.ts';
import { RedisObservedStateStore } from '../adapters/redis/observed-state-store.ts';
import { RedisTeamSlots } from '../adapters/redis/team-slots-store.ts';
import { createRedisConnection } from '../adapters/redis/redis-connection.ts';
import type { RuntimeConfig } from '../config/config.ts';
import { hostname } from 'node:os';
import { KubeLeaseStore } from '../adapters/kubernetes/lease-store.ts';
import { Controller } from '../controller/controller.ts';
import { LeaderElector } from '../controller/leader-election.ts';
import { nodeQueue, SHARED_QUEUE } from '../domain/jobs.ts';
import { retryClassOf } from '../domain/errors.ts';
import { LABELS } from '../domain/names.ts';
import { DANGEROUS_CAPABILITIES } from '../domain/hardening.ts';
import type { Logger } from '../observability/logger.ts';
import { ContainerOperations } from '../worker/container-ops.ts';
import { NodeReconciler } from '../worker/node-reconciler.ts';
import { NodeIsolation } from '../worker/node-isolation.ts';
import { StatusReporter } from '../worker/status-reporter.ts';
import { SYSTEM_CLOCK } from '../domain/ports.ts';
import { PortAllocator } from '../worker/port-allocator.ts';
import { Heartbeat } from '../worker/heartbeat.ts';
import { RedisHeartbeatStore } from '../adapters/redis/heartbeat-store.ts';
import { RedisPoolClaimStore } from '../adapters/redis/pool-claim-store.ts';
import { LocalPoolFiles } from '../adapters/filesystem/pool-files.ts';
import { ClaimBook } from '../worker/claim-book.ts';
import { PoolKeeper } from '../worker/pool-keeper.ts';
import { ChallengeLookup } from '../worker/challenge-lookup.ts';
import { POOL_LABEL } from '../domain/pool.ts';
import { VERSION } from '../version.ts';
import { dockerCheck } from '../adapters/docker/docker-check.ts';
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
import { NodeMonitor } from '../controller/node-monitor.ts';
import { TimedRuntime } from '../worker/timed-runtime.ts';
import type { Metrics } from '../observability/metrics.ts';

const DOCKER_IDLE_TIMEOUT_MS = 60_000;
/** After the job pool's own wait: passes still running then are cut short by the exit (they are idempotent). */
const RECONCILER_CLOSE_GRACE_MS = 1_000;

/** How often a worker looks at its warm pools when nothing woke it. */
const POOL_INTERVAL_MS = 2_000;

/** How often the controller reads the workers' heartbeats. */
const NODE_POLL_MS = 2_000;

/** Something started that must be closed on shutdown. */
export interface Component {
  name: string;
  /** What `/readyz` checks for this component. */
  readiness: Record<string, DependencyCheck>;
  close(): Promise<void>;
}

/**
 * A fail-fast command connection and a blocking one for BullMQ, each logging its
 * connection errors (ioredis reconnects by itself; an unheard `error` would crash).
 */
type RedisConnection = ReturnType<typeof createRedisConnection>;

function openRedis(config: RuntimeConfig, logger: Logger): { command: RedisConnection; blocking: RedisConnection } {
  return { command: openConnection(config, logger, 'command'), blocking: openConnection(config, logger, 'blocking') };
}

function openConnection(config: RuntimeConfig, logger: Logger, kind: 'command' | 'blocking'): RedisConnection {
  const connection = createRedisConnection(config.redis, kind);
  connection.on('error', (error: Error) => {
    logger.warn({ err: error }, 'Redis connection failed; retrying');
  });
  return connection;
}

/**
 * Composition root of the controller. With leader election on (the default), the
 * controller runs only while this process holds the deployment's Lease; standbys
 * wait. Losing the lease calls `onLostLeadership` after the controller stopped.
 */
export async function startController(config: RuntimeConfig, logger: Logger, metrics: Metrics, onLostLeadership: () => void): Promise<Component> {
  const kubeConfig = loadKubeConfig(config.kubeconfigPath);
  const { command: producer, blocking } = openRedis(config, logger);
  const jobs = new BullJobQueue(producer, blocking, config.redis.prefix, config.jobs);
  const heartbeats = new RedisHeartbeatStore(producer, config.redis.prefix);
  const makeController = (): Controller =>
    new Controller(
      {
        cache: new KubeInstanceCache(kubeConfig, logger, config.namespaces),
        challenges: new KubeChallengeCache(kubeConfig, logger, config.namespaces),
        challengeApi: new KubeChallengeApi(kubeConfig),
        api: new KubeInstanceApi(kubeConfig),
        jobs,
        logger,
        metrics,
        nodes: new NodeMonitor(heartbeats, { ...config.controller.nodeLost, pollMs: NODE_POLL_MS }, logger.child({ component: 'node-monitor' })),
        pools: heartbeats,
      },
      config.controller,
    );
  const closeConnections = async (): Promise<void> => {
    await jobs.close();
    producer.disconnect();
    blocking.disconnect();
  };

  let controller: Controller | undefined;
  metrics.onCollect(() => controller?.observe(metrics));
  metrics.onCollect(async () => {
    for (const { queue, state, count } of await jobs.counts()) metrics.queueJobs.set({ queue, state }, count);
  });
  const readiness: Record<string, DependencyCheck> = {
    redis: redisReadiness(producer),
    kubernetes: kubernetesReadiness(kubeConfig),
    informer: () =>
      Promise.resolve(
        controller === undefined
          ? { name: 'informer', healthy: true, detail: 'standby: not leading, nothing to sync' }
          : { name: 'informer', healthy: controller.isReady(), detail: controller.isReady() ? 'ChallengeInstances synced' : 'waiting for the first list of ChallengeInstances' },
      ),
  };

  const election = config.controller.leaderElection;
  if (election === undefined) {
    const running = makeController();
    controller = running;
    await running.start();
    return { name: 'controller', readiness, close: async () => { await running.close(); await closeConnections(); } };
  }

  const identity = `${hostname()}-${process.pid}`;
  const elector = new LeaderElector(new KubeLeaseStore(kubeConfig, election.namespace, election.name), identity, logger.child({ lease: `${election.namespace}/${election.name}` }));
  elector.start(
    async () => {
      controller = makeController();
      await controller.start();
    },
    async () => {
      await controller?.close();
      controller = undefined;
      onLostLeadership();
    },
  );
  logger.info({ identity, lease: `${election.namespace}/${election.name}` }, 'Waiting to lead');
  return {
    name: 'controller',
    readiness,
    close: async () => {
      await elector.close(async () => {
        await controller?.close();
      });
      await closeConnections();
    },
  };
}

/**
 * Reads the node's pool claims back before anything looks at a container (a
 * claimed container without its claim would look like no instance's). Redis may
 * not be up yet (a chart's Redis starting with the worker): waits for it, as the
 * job queues do, instead of exiting.
 */
async function loadClaims(claims: ClaimBook, logger: Logger): Promise<void> {
  for (let delayMs = 500; ; delayMs = Math.min(delayMs * 2, 10_000)) {
    try {
      await claims.load();
      return;
    } catch (error) {
      logger.warn({ err: error, retryInMs: delayMs }, 'Reading the pool claims from Redis failed; the worker waits for Redis before it looks at any container');
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** Composition root of a worker on this Docker node. */
export async function startWorker(config: RuntimeConfig, logger: Logger, metrics: Metrics): Promise<Component> {
  const settings = config.worker;
  const kubeConfig = loadKubeConfig(config.kubeconfigPath);
  const { command, blocking } = openRedis(config, logger);
  // Requests silent for a minute are aborted (pulls and stops report within that);
  // the event stream, silent for hours at a time, has a client of its own.
  const docker = createDockerClient(config.docker, { idleTimeoutMs: DOCKER_IDLE_TIMEOUT_MS });
  const runtime = new TimedRuntime(new DockerRuntime(docker, createDockerClient(config.docker)), metrics);
  const api = new KubeInstanceApi(kubeConfig);
  const clock = SYSTEM_CLOCK;
  const isolation = new NodeIsolation({ runtime: new DockerNetworks(docker), firewall: new IptablesFirewall(), policy: settings.isolation, logger, metrics, node: settings.node });
  const heartbeats = new RedisHeartbeatStore(command, config.redis.prefix);
  // Claims of warm pool containers, read back before anything looks at a container.
  const claims = new ClaimBook(new RedisPoolClaimStore(command, config.redis.prefix), settings.node);
  await loadClaims(claims, logger);
  const poolFiles = new LocalPoolFiles(settings.poolFilesDir, settings.node);
  const ops = new ContainerOperations({
    runtime,
    ports: new PortAllocator(settings.portRange),
    networks: isolation,
    settings: {
      node: settings.node,
      bindAddress: settings.bindAddress,
      readinessTimeoutMs: settings.readinessTimeoutMs,
      hardening: settings.hardening,
      allowedImages: settings.allowedImages,
      defaultEgress: settings.isolation.defaultEgress,
    },
    clock,
    claims,
    poolFiles,
  });
  const challengeCache = new KubeChallengeCache(kubeConfig, logger, config.namespaces);
  const pools = new PoolKeeper({
    runtime,
    ops,
    claims,
    files: poolFiles,
    guard: settings.isolation.firewall ? isolation : undefined,
    challenges: challengeCache,
    liveNodes: async () => (await heartbeats.liveNodes()).size,
    settings: { node: settings.node, namespaces: config.namespaces, refillConcurrency: settings.poolRefillConcurrency, intervalMs: POOL_INTERVAL_MS, maxLifetimeSeconds: config.controller.lifetime.maxLifetimeSeconds },
    clock,
    logger,
    metrics,
  });
  // Idle pool containers left by an earlier worker stay closed while the rules are put back.
  await pools.guardListed().catch((error: unknown) => {
    logger.warn({ err: error }, 'Could not list pool containers yet; their ports stay as the filter table has them');
  });
  // No container before its network and the rules around it exist. An engine not
  // up yet is waited for (the first start, and every sweep, try again); a node
  // where the rules cannot be installed at all stops the worker here.
  await isolation.ensure().catch((error: unknown) => {
    if (retryClassOf(error) === 'permanent') throw error;
    logger.warn({ err: error }, 'Instance networks or firewall rules not in place yet; no container starts until they are');
  });
  const reconciler = new NodeReconciler({
    api,
    runtime,
    ops,
    isolation,
    pool: pools,
    claims,
    challenges: new ChallengeLookup(challengeCache, new KubeChallengeSource(kubeConfig)),
    // Per-team flags need CTFLEET_FLAG_KEY_SECRET; per-instance and static ones do not.
    flags: new KubeFlagSecrets(kubeConfig, { keySecret: config.flags.keySecret }),
    maxLifetimeSeconds: config.controller.lifetime.maxLifetimeSeconds,
    reporter: new StatusReporter({ api, observed: new RedisObservedStateStore(command, config.redis.prefix), node: settings.node, clock, logger }),
    settings: {
      node: settings.node,
      advertiseAddress: settings.advertiseAddress,
      namespaces: config.namespaces,
      // Jobs of both queues, plus room for events and sweeps.
      concurrency: settings.concurrency * 2 + 2,
      sweepIntervalMs: settings.sweepIntervalMs,
      restart: settings.restart,
    },
    clock,
    logger,
    metrics,
  });
  reconciler.start();
  pools.start();
  const pool = new BullWorkerPool(blocking, config.redis.prefix, logger, (action, outcome, seconds) => {
    metrics.jobs.inc({ action, outcome });
    metrics.jobDuration.observe({ action, outcome }, seconds);
  });
  metrics.workerCapacity.set(settings.concurrency);
  const handler = reconciler.handle.bind(reconciler);
  pool.consume(SHARED_QUEUE, settings.concurrency, handler);
  pool.consume(nodeQueue(settings.node), settings.concurrency, handler);
  await pool.waitUntilReady();
  const startedAt = new Date().toISOString();
  const heartbeat = new Heartbeat(
    heartbeats,
    async () => {
      const running = (await runtime.listManaged()).filter((container) => container.running && container.labels[POOL_LABEL] === undefined && (container.labels[LABELS.node] ?? settings.node) === settings.node).length;
      metrics.workerRunning.set(running);
      const counts = pools.counts();
      return { node: settings.node, capacity: settings.concurrency, running, version: VERSION, startedAt, ...(counts.length === 0 ? {} : { pools: counts }) };
    },
    logger,
    (ok) => {
      metrics.heartbeats.inc({ result: ok ? 'success' : 'error' });
    },
    clock,
  );
  await heartbeat.start();
  logger.info({ node: settings.node, portRange: settings.portRange, concurrency: settings.concurrency, allowedImages: settings.allowedImages }, 'Worker started');
  if (settings.allowedImages.length === 0) logger.warn('CTFLEET_ALLOWED_IMAGES is empty: every instance will fail ImageNotAllowed until it names the images challenges may run');
  const dangerous = settings.hardening.allowedExtraCapabilities.filter((capability) => capability in DANGEROUS_CAPABILITIES);
  if (dangerous.length > 0) logger.warn({ capabilities: dangerous }, `CTFLEET_UNSAFE_ALLOW_DANGEROUS_CAPABILITIES is set: instances may add ${dangerous.join(', ')}, with which a team can break out of its instance's isolation`);
  return {
    name: 'worker',
    readiness: { redis: redisReadiness(command), kubernetes: kubernetesReadiness(kubeConfig), docker: dockerCheck(docker) },
    close: async () => {
      // Jobs first: the ones in flight finish through the reconciler's passes
      // (or go back to their queue), then the reconciler stops.
      const { handedBack } = await pool.close(config.shutdownTimeoutMs);
      logger.info({ handedBack }, 'Worker stopped taking jobs');
      await pools.close();
      await reconciler.close(RECONCILER_CLOSE_GRACE_MS);
      await heartbeat.close(settings.node);
      command.disconnect();
      blocking.disconnect();
    },
  };
}

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
