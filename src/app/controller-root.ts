import { KubeInstanceApi } from '../adapters/kubernetes/instance-api.ts';
import { KubeInstanceCache } from '../adapters/kubernetes/instance-cache.ts';
import { KubeChallengeApi } from '../adapters/kubernetes/challenge-api.ts';
import { KubeChallengeCache } from '../adapters/kubernetes/challenge-source.ts';
import { loadKubeConfig } from '../adapters/kubernetes/kube-config.ts';
import { BullJobQueue } from '../adapters/queue/bullmq-job-queue.ts';
import type { RuntimeConfig } from '../config/config.ts';
import { hostname } from 'node:os';
import { KubeLeaseStore } from '../adapters/kubernetes/lease-store.ts';
import { Controller } from '../controller/controller.ts';
import { LeaderElector } from '../controller/leader-election.ts';
import type { Logger } from '../observability/logger.ts';
import { RedisHeartbeatStore } from '../adapters/redis/heartbeat-store.ts';
import { kubernetesReadiness } from '../adapters/kubernetes/kubernetes-check.ts';
import { redisReadiness } from '../adapters/redis/redis-check.ts';
import type { DependencyCheck } from '../health/dependency-check.ts';
import { NodeMonitor } from '../controller/node-monitor.ts';
import type { Metrics } from '../observability/metrics.ts';
import { type Component, openRedis } from './component.ts';

/** How often the controller reads the workers' heartbeats. */
const NODE_POLL_MS = 2_000;

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
