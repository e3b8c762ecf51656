import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { translateKubeError } from './errors.ts';

/** One key of a Secret, decoded; undefined when the Secret or the key is missing. */
export async function readSecretValue(kubeConfig: KubeConfig, namespace: string, name: string, key: string): Promise<string | undefined> {
  try {
    const secret = await kubeConfig.makeApiClient(CoreV1Api).readNamespacedSecret({ namespace, name });
    const value = secret.data?.[key];
    return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
  } catch (error) {
    const translated = translateKubeError(error, `read Secret ${namespace}/${name}`);
    if (translated.retry === 'not-found') return undefined;
    throw translated;
  }
}
