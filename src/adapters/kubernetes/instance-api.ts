import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { ChallengeInstance, InstanceStatus } from '../../domain/challenge-instance.ts';
import { CtfleetError, isNotFound } from '../../domain/errors.ts';
import { FINALIZER, GROUP, KIND, PLURAL, VERSION } from '../../domain/names.ts';
import type { InstanceApi, InstanceEvent } from '../../domain/ports.ts';
import { makePooledApiClient } from './api-client.ts';
import { translateKubeError } from './errors.ts';
import { toInstance } from './instance-object.ts';
import { ResourceWriter } from './resource-writer.ts';

/** {@link InstanceApi} over client-node's CustomObjectsApi; its writes through {@link ResourceWriter}, shared with Challenges. */
export class KubeInstanceApi implements InstanceApi {
  private readonly custom: CustomObjectsApi;
  private readonly writer: ResourceWriter;

  constructor(kubeConfig: KubeConfig) {
    this.custom = makePooledApiClient(kubeConfig, CustomObjectsApi);
    this.writer = new ResourceWriter(this.custom, makePooledApiClient(kubeConfig, CoreV1Api), { plural: PLURAL, kind: KIND });
  }

  async get(namespace: string, name: string): Promise<ChallengeInstance | undefined> {
    try {
      const raw: unknown = await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name });
      return toInstance(raw);
    } catch (error) {
      const translated = translateKubeError(error, `get ChallengeInstance ${namespace}/${name}`);
      if (isNotFound(translated)) return undefined;
      throw translated;
    }
  }

  async list(namespaces: readonly string[] = [], fieldSelector?: string): Promise<ChallengeInstance[]> {
    try {
      const selector = fieldSelector === undefined ? {} : { fieldSelector };
      const lists = namespaces.length === 0
        ? [await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, ...selector })]
        : await Promise.all(namespaces.map((namespace) => this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, ...selector })));
      return lists.flatMap((raw) => ((raw as { items?: unknown[] }).items ?? []).map(toInstance));
    } catch (error) {
      throw translateKubeError(error, `list ChallengeInstances${fieldSelector === undefined ? '' : ` (${fieldSelector})`}`);
    }
  }

  async listPlacedOn(node: string, namespaces: readonly string[] = []): Promise<ChallengeInstance[] | undefined> {
    try {
      return await this.list(namespaces, `status.node=${node}`);
    } catch (error) {
      // "field label not supported": a CRD without selectableFields, or an API server before 1.31.
      if (error instanceof CtfleetError && error.code === 'Invalid' && /field label not supported/i.test(error.message)) return undefined;
      throw error;
    }
  }

  addFinalizer(instance: ChallengeInstance): Promise<string | undefined> {
    return this.writer.addFinalizer(instance.metadata, FINALIZER);
  }

  removeFinalizer(instance: ChallengeInstance): Promise<void> {
    return this.writer.removeFinalizer(instance.metadata, FINALIZER);
  }

  async delete(instance: ChallengeInstance): Promise<void> {
    const { namespace, name, uid } = instance.metadata;
    try {
      await this.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { preconditions: { uid } } });
    } catch (error) {
      const translated = translateKubeError(error, `delete ChallengeInstance ${namespace}/${name}`);
      if (!isNotFound(translated)) throw translated;
    }
  }

  applyStatus(instance: ChallengeInstance, fieldManager: string, status: InstanceStatus): Promise<void> {
    return this.writer.applyStatus(instance.metadata, fieldManager, status);
  }

  recordEvent(instance: ChallengeInstance, event: InstanceEvent, component: string): Promise<void> {
    return this.writer.recordEvent(instance.metadata, event, component);
  }
}
