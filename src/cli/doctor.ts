import { createDockerClient } from '../adapters/docker/docker-client.ts';
import { dockerCheck } from '../adapters/docker/docker-check.ts';
import { kubernetesCheck } from '../adapters/kubernetes/kubernetes-check.ts';
import { loadKubeConfig } from '../adapters/kubernetes/kube-config.ts';
import { createRedisConnection } from '../adapters/redis/redis-connection.ts';
import { redisCheck } from '../adapters/redis/redis-check.ts';
import type { ConnectionConfig } from '../config/config.ts';
import { checkDependencies, type DependencyStatus } from '../health/dependency-check.ts';
import { formatTable, type OutputFormat } from './output.ts';

/**
 * `ctfleet doctor`: checks that the Kubernetes API, Redis and the Docker engine
 * answer with the configured credentials. Exit code 0 when all are healthy, 1 otherwise.
 */
export async function runDoctor(config: ConnectionConfig, format: OutputFormat): Promise<number> {
  const redis = createRedisConnection(config.redis, 'command');
  try {
    const statuses = await checkDependencies(
      {
        // Loaded inside the check so an unreadable kubeconfig is reported, not thrown.
        kubernetes: async () => kubernetesCheck(loadKubeConfig(config.kubeconfigPath))(),
        redis: redisCheck(redis),
        docker: dockerCheck(createDockerClient(config.docker)),
      },
      10_000,
    );
    process.stdout.write(`${render(statuses, format)}\n`);
    return statuses.every((status) => status.healthy) ? 0 : 1;
  } finally {
    redis.disconnect();
  }
}

function render(statuses: readonly DependencyStatus[], format: OutputFormat): string {
  if (format === 'json') return JSON.stringify({ dependencies: statuses }, null, 2);
  return formatTable(
    ['dependency', 'status', 'detail'],
    statuses.map((status) => [status.name, status.healthy ? 'ok' : 'FAILED', status.detail]),
  );
}
