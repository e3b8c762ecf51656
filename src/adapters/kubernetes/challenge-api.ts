import { hostname } from 'node:os';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { Challenge, ChallengeStatus } from '../../domain/challenge.ts';
import { isNotFound } from '../../domain/errors.ts';
import { API_VERSION, CHALLENGE_FINALIZER, CHALLENGE_KIND, CHALLENGE_PLURAL, GROUP, VERSION } from '../../domain/names.ts';
import type { ChallengeApi, InstanceEvent } from '../../domain/ports.ts';
import { makePooledApiClient } from './api-client.ts';
import { translateKubeError } from './errors.ts';

/** {@link ChallengeApi} over client-node's CustomObjectsApi and CoreV1Api, as `KubeInstanceApi` is for instances. */
export class KubeChallengeApi implements ChallengeApi {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.custom = makePooledApiClient(kubeConfig, CustomObjectsApi);
    this.core = makePooledApiClient(kubeConfig, CoreV1Api);
  }

  async addFinalizer(challenge: Challenge): Promise<string | undefined> {
    const finalizers = challenge.metadata.finalizers ?? [];
    if (finalizers.includes(CHALLENGE_FINALIZER)) return challenge.metadata.resourceVersion;
    return this.patchFinalizers(challenge, [...finalizers, CHALLENGE_FINALIZER], 'add finalizer to');
  }

  async removeFinalizer(challenge: Challenge): Promise<void> {
    const finalizers = challenge.metadata.finalizers ?? [];
    if (!finalizers.includes(CHALLENGE_FINALIZER)) return;
    try {
      await this.patchFinalizers(challenge, finalizers.filter((finalizer) => finalizer !== CHALLENGE_FINALIZER), 'remove finalizer from');
    } catch (error) {
      // Already gone: the finalizer went with it.
      if (!isNotFound(error)) throw error;
    }
  }

  /**
   * Merge patch of the whole finalizer list, carrying the resourceVersion planned
   * from: had someone else changed the list meanwhile, the API server answers 409
   * (a conflict: plan again now) rather than have their finalizer overwritten.
   */
  private async patchFinalizers(challenge: Challenge, finalizers: string[], verb: string): Promise<string | undefined> {
    const { namespace, name, resourceVersion } = challenge.metadata;
    try {
      const patched: unknown = await this.custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace, plural: CHALLENGE_PLURAL, name, body: { metadata: { finalizers, resourceVersion } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      return (patched as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion;
    } catch (error) {
      throw translateKubeError(error, `${verb} Challenge ${namespace}/${name}`);
    }
  }

  async applyStatus(challenge: Challenge, fieldManager: string, status: ChallengeStatus): Promise<void> {
    const { namespace, name, uid } = challenge.metadata;
    try {
      await this.custom.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          namespace,
          plural: CHALLENGE_PLURAL,
          name,
          // The uid keeps a status planned for a deleted Challenge off a new one of the same name.
          body: { apiVersion: API_VERSION, kind: CHALLENGE_KIND, metadata: { name, namespace, uid }, status },
          fieldManager,
          force: true,
        },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      );
    } catch (error) {
      throw translateKubeError(error, `apply status of Challenge ${namespace}/${name}`);
    }
  }

  async recordEvent(challenge: Challenge, event: InstanceEvent, component: string): Promise<void> {
    const { namespace, name, uid } = challenge.metadata;
    const now = new Date();
    try {
      await this.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: `${name}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`, namespace },
          involvedObject: { apiVersion: API_VERSION, kind: CHALLENGE_KIND, name, namespace, uid },
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
      throw translateKubeError(error, `record event on Challenge ${namespace}/${name}`);
    }
  }
}
