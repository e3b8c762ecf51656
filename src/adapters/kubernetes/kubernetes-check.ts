import { CoreV1Api, VersionApi, type KubeConfig } from '@kubernetes/client-node';
import { makePooledApiClient } from './api-client.ts';
import type { DependencyCheck } from '../../health/dependency-check.ts';

/** Reports the API server's version and that namespaces can be listed with these credentials. */
export function kubernetesCheck(kubeConfig: KubeConfig): DependencyCheck {
  return async () => {
    const version = await kubeConfig.makeApiClient(VersionApi).getCode();
    const namespaces = await kubeConfig.makeApiClient(CoreV1Api).listNamespace({ limit: 1 });
    const server = kubeConfig.getCurrentCluster()?.server ?? 'in-cluster';
    return {
      name: 'kubernetes',
      healthy: true,
      detail: `${version.gitVersion} at ${server} (namespaces readable: ${namespaces.items.length > 0 ? 'yes' : 'none found'})`,
    };
  };
}

/**
 * Readiness: the API server answers `/version` with these credentials. One pooled
 * client for the life of the process, since probes run every few seconds.
 */
export function kubernetesReadiness(kubeConfig: KubeConfig): DependencyCheck {
  const versions = makePooledApiClient(kubeConfig, VersionApi);
  return async () => {
    const version = await versions.getCode();
    return { name: 'kubernetes', healthy: true, detail: `API server ${version.gitVersion} answers` };
  };
}
