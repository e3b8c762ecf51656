import { CoreV1Api, VersionApi, type KubeConfig } from '@kubernetes/client-node';
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
