import { createDockerClient } from '../adapters/docker/docker-client.ts';
import { DockerRuntime } from '../adapters/docker/container-runtime.ts';
import { DockerNetworks } from '../adapters/docker/network-runtime.ts';
import { IptablesFirewall } from '../adapters/firewall/iptables.ts';
import { KubeInstanceApi } from '../adapters/kubernetes/instance-api.ts';
import { KubeChallengeCache, KubeChallengeSource } from '../adapters/kubernetes/challenge-source.ts';
import { KubeFlagSecrets } from '../adapters/kubernetes/flag-secrets.ts';
import { loadKubeConfig } from '../adapters/kubernetes/kube-config.ts';
import { BullWorkerPool } from '../adapters/queue/bullmq-worker.ts';
import { RedisObservedStateStore } from '../adapters/redis/observed-state-store.ts';
import type { RuntimeConfig } from '../config/config.ts';
import { nodeQueue, SHARED_QUEUE } from '../domain/jobs.ts';
import { retryClassOf } from '../domain/errors.ts';
import { LABELS } from '../domain/names.ts';
import { DANGEROUS_CAPABILITIES } from '../domain/hardening.ts';
import type { Logger } from '../observability/logger.ts';
import { ContainerOperations } from '../worker/container-ops.ts';
import { NodeReconciler } from '../worker/node-reconciler.ts';
import { NodeListing } from '../worker/node-listing.ts';
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
import { TimedRuntime } from '../worker/timed-runtime.ts';
import type { Metrics } from '../observability/metrics.ts';
import { type Component, openRedis } from './component.ts';

const DOCKER_IDLE_TIMEOUT_MS = 60_000;
/** After the job pool's own wait: passes still running then are cut short by the exit (they are idempotent). */
const RECONCILER_CLOSE_GRACE_MS = 1_000;

/** How often a worker looks at its warm pools when nothing woke it. */
const POOL_INTERVAL_MS = 2_000;
/** The oldest running count a heartbeat may carry. */
const HEARTBEAT_LISTING_MAX_AGE_MS = 30_000;

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
  // One listing of the node's containers at a time: the sweep's serves ports and the heartbeat.
  const listing = new NodeListing(runtime, clock);
  const ops = new ContainerOperations({
    runtime,
    listing,
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
    listing,
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
  // The heartbeat's count of running containers, from the node's listing: a fresh
  // one at every beat while a listing is cheap, and one at most 1 % of the engine's
  // time old once it is not (Docker walks every container to list them: ~0.5 s at
  // 500 in a burst, every 5 s was 10 % of it), usually the last sweep's, yet never
  // older than 30 s: a listing that fails fails the beat, which is how an engine
  // that went away shows in the node's liveness.
  const runningHere = async (): Promise<number> => {
    const containers = await listing.within(Math.min(listing.lastTookMs() * 100, HEARTBEAT_LISTING_MAX_AGE_MS));
    return containers.filter((container) => container.running && container.labels[POOL_LABEL] === undefined && (container.labels[LABELS.node] ?? settings.node) === settings.node).length;
  };
  const heartbeat = new Heartbeat(
    heartbeats,
    async () => {
      const running = await runningHere();
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
