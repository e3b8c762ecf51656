import { hostname } from 'node:os';
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import type { ChallengeInstance, InstanceStatus } from '../../domain/challenge-instance.ts';
import { isNotFound } from '../../domain/errors.ts';
import { API_VERSION, FINALIZER, GROUP, KIND, PLURAL, VERSION } from '../../domain/names.ts';
import type { InstanceApi, InstanceEvent } from '../../domain/ports.ts';
import { makePooledApiClient } from './api-client.ts';
import { translateKubeError } from './errors.ts';
import { toInstance } from './instance-object.ts';

/** {@link InstanceApi} over client-node's CustomObjectsApi and CoreV1Api. */
export class KubeInstanceApi implements InstanceApi {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.custom = makePooledApiClient(kubeConfig, CustomObjectsApi);
    this.core = makePooledApiClient(kubeConfig, CoreV1Api);
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

  async list(namespaces: readonly string[] = []): Promise<ChallengeInstance[]> {
    try {
      const lists = namespaces.length === 0
        ? [await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })]
        : await Promise.all(namespaces.map((namespace) => this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })));
      return lists.flatMap((raw) => ((raw as { items?: unknown[] }).items ?? []).map(toInstance));
    } catch (error) {
      throw translateKubeError(error, 'list ChallengeInstances');
    }
  }

  async addFinalizer(instance: ChallengeInstance): Promise<string | undefined> {
    const finalizers = instance.metadata.finalizers ?? [];
    if (finalizers.includes(FINALIZER)) return instance.metadata.resourceVersion;
    return this.patchMetadata(instance, [...finalizers, FINALIZER], 'add finalizer to');
  }

  async removeFinalizer(instance: ChallengeInstance): Promise<void> {
    const finalizers = instance.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return;
    try {
      await this.patchMetadata(
        instance,
        finalizers.filter((f) => f !== FINALIZER),
        'remove finalizer from',
      );
    } catch (error) {
      // Already gone: the finalizer went with it.
      if (!isNotFound(error)) throw error;
    }
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

  /**
   * Merge patch carrying the resourceVersion we planned from: if the object changed
   * meanwhile the API server answers 409, surfaced as a conflict (retry now).
   */
  private async patchMetadata(instance: ChallengeInstance, finalizers: string[], verb: string): Promise<string | undefined> {
    const { namespace, name, resourceVersion } = instance.metadata;
    try {
      const patched: unknown = await this.custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace,
          plural: PLURAL,
          name,
          body: { metadata: { finalizers, resourceVersion } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      return (patched as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion;
    } catch (error) {
      throw translateKubeError(error, `${verb} ChallengeInstance ${namespace}/${name}`);
    }
  }

  async applyStatus(instance: ChallengeInstance, fieldManager: string, status: InstanceStatus): Promise<void> {
    const { namespace, name, uid } = instance.metadata;
    try {
      await this.custom.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          namespace,
          plural: PLURAL,
          name,
          // The uid precondition keeps a report for a deleted-and-recreated
          // instance of the same name from landing on the new object.
          body: { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace, uid }, status },
          fieldManager,
          force: true,
        },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      );
    } catch (error) {
      throw translateKubeError(error, `apply status of ChallengeInstance ${namespace}/${name}`);
    }
  }

  async recordEvent(instance: ChallengeInstance, event: InstanceEvent, component: string): Promise<void> {
    const { namespace, name, uid } = instance.metadata;
    const now = new Date();
    try {
      await this.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: `${name}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`, namespace },
          involvedObject: { apiVersion: API_VERSION, kind: KIND, name, namespace, uid },
          type: event.type,
          reason: event.reason,
          message: event.message,
          source: { component },
          reportingComponent: `ctfleet.io/${component}`,
          reportingInstance: hostname(),
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (error) {
      throw translateKubeError(error, `record event on ChallengeInstance ${namespace}/${name}`);
    }
  }
}
