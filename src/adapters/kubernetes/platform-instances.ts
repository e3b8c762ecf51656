import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { ChallengeInstance, InstanceSpec } from '../../domain/challenge-instance.ts';
import { isNotFound } from '../../domain/errors.ts';
import { API_VERSION, GROUP, KIND, LABELS, PLURAL, VERSION } from '../../domain/names.ts';
import { makePooledApiClient } from './api-client.ts';
import { translateKubeError } from './errors.ts';
import { toInstance } from './instance-object.ts';

/**
 * ChallengeInstances as the platform API manages them: by name in one namespace,
 * labelled with team and challenge so they can be listed by either. Everything
 * goes through the Kubernetes API (admission, RBAC, audit), never around it.
 */
export class KubePlatformInstances {
  private readonly custom: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.custom = makePooledApiClient(kubeConfig, CustomObjectsApi);
  }

  /**
   * Creates the instance of `request.challenge` for `request.team` (`spec.challengeRef`,
   * desired state Running); when the name exists already, returns the existing one
   * with `created: false`.
   */
  async create(namespace: string, name: string, request: { team: string; challenge: string; ttlSeconds?: number; priority?: number }): Promise<{ created: boolean; instance: ChallengeInstance }> {
    const spec: Record<string, unknown> = { team: request.team, challengeRef: { name: request.challenge }, desiredState: 'Running' };
    if (request.ttlSeconds !== undefined) spec.ttlSeconds = request.ttlSeconds;
    if (request.priority !== undefined) spec.priority = request.priority;
    const body = {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name, namespace, labels: { [LABELS.team]: request.team, [LABELS.challenge]: request.challenge, [LABELS.managedBy]: 'ctfleet-api' } },
      spec,
    };
    try {
      const raw: unknown = await this.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, body });
      return { created: true, instance: toInstance(raw) };
    } catch (error) {
      const translated = translateKubeError(error, `create ChallengeInstance ${namespace}/${name}`);
      if (translated.retry !== 'conflict') throw translated;
      const existing = await this.get(namespace, name);
      if (existing === undefined) throw translated;
      return { created: false, instance: existing };
    }
  }

  async get(namespace: string, name: string): Promise<ChallengeInstance | undefined> {
    try {
      return toInstance(await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name }));
    } catch (error) {
      const translated = translateKubeError(error, `get ChallengeInstance ${namespace}/${name}`);
      if (isNotFound(translated)) return undefined;
      throw translated;
    }
  }

  async list(namespace: string, labels: Record<string, string>): Promise<ChallengeInstance[]> {
    const labelSelector = Object.entries(labels).map(([key, value]) => `${key}=${value}`).join(',');
    try {
      const raw = (await this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, ...(labelSelector === '' ? {} : { labelSelector }) })) as { items?: unknown[] };
      return (raw.items ?? []).map(toInstance);
    } catch (error) {
      throw translateKubeError(error, `list ChallengeInstances in ${namespace}`);
    }
  }

  /** Merge-patches the spec; undefined when the instance does not exist. */
  async patchSpec(namespace: string, name: string, spec: Partial<InstanceSpec>): Promise<ChallengeInstance | undefined> {
    try {
      const raw: unknown = await this.custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { spec } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      return toInstance(raw);
    } catch (error) {
      const translated = translateKubeError(error, `update ChallengeInstance ${namespace}/${name}`);
      if (isNotFound(translated)) return undefined;
      throw translated;
    }
  }

  /** Deletes by name; false when it did not exist. */
  async delete(namespace: string, name: string): Promise<boolean> {
    try {
      await this.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name });
      return true;
    } catch (error) {
      const translated = translateKubeError(error, `delete ChallengeInstance ${namespace}/${name}`);
      if (isNotFound(translated)) return false;
      throw translated;
    }
  }
}
