import { KubeConfig } from '@kubernetes/client-node';

/**
 * Loads credentials from the given kubeconfig file, or from the pod's service
 * account when no file is given (the in-cluster case).
 */
export function loadKubeConfig(kubeconfigPath: string | undefined): KubeConfig {
  const kubeConfig = new KubeConfig();
  if (kubeconfigPath === undefined) {
    kubeConfig.loadFromCluster();
  } else {
    kubeConfig.loadFromFile(kubeconfigPath);
  }
  return kubeConfig;
}
