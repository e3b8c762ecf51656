import { hostname } from 'node:os';
import { PatchStrategy, setHeaderOptions, type CoreV1Api, type CustomObjectsApi } from '@kubernetes/client-node';
import { isNotFound } from '../../domain/errors.ts';
import { API_VERSION, GROUP, VERSION } from '../../domain/names.ts';
import type { InstanceEvent } from '../../domain/ports.ts';
import { translateKubeError } from './errors.ts';

/** The identity fields of one of ctfleet's objects that its writes need. */
interface ObjectMeta {
  namespace: string;
  name: string;
  uid: string;
  resourceVersion?: string;
  finalizers?: string[];
}

/**
 * The writes ctfleet makes to its own resources, alike for ChallengeInstances and
 * Challenges: finalizers, status (server-side apply) and Events. One per kind.
 */
export class ResourceWriter {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly plural: string;
  private readonly kind: string;

  constructor(custom: CustomObjectsApi, core: CoreV1Api, resource: { plural: string; kind: string }) {
    this.custom = custom;
    this.core = core;
    this.plural = resource.plural;
    this.kind = resource.kind;
  }

  /** Adds `finalizer` unless present; the resourceVersion after the write. */
  async addFinalizer(metadata: ObjectMeta, finalizer: string): Promise<string | undefined> {
    const finalizers = metadata.finalizers ?? [];
    if (finalizers.includes(finalizer)) return metadata.resourceVersion;
    return this.patchFinalizers(metadata, [...finalizers, finalizer], 'add finalizer to');
  }

  /** Removes `finalizer` if present; an object already gone is success. */
  async removeFinalizer(metadata: ObjectMeta, finalizer: string): Promise<void> {
    const finalizers = metadata.finalizers ?? [];
    if (!finalizers.includes(finalizer)) return;
    try {
      await this.patchFinalizers(metadata, finalizers.filter((f) => f !== finalizer), 'remove finalizer from');
    } catch (error) {
      // Already gone: the finalizer went with it.
      if (!isNotFound(error)) throw error;
    }
  }

  /**
   * Merge patch of the whole finalizer list, carrying the resourceVersion planned
   * from: had someone else changed the object meanwhile, the API server answers
   * 409, surfaced as a conflict (plan again now), rather than have their
   * finalizer overwritten.
   */
  private async patchFinalizers(metadata: ObjectMeta, finalizers: string[], verb: string): Promise<string | undefined> {
    const { namespace, name, resourceVersion } = metadata;
    try {
      const patched: unknown = await this.custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace, plural: this.plural, name, body: { metadata: { finalizers, resourceVersion } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      return (patched as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion;
    } catch (error) {
      throw translateKubeError(error, `${verb} ${this.kind} ${namespace}/${name}`);
    }
  }

  /** Server-side apply of the status fields `fieldManager` owns. */
  async applyStatus(metadata: ObjectMeta, fieldManager: string, status: object): Promise<void> {
    const { namespace, name, uid } = metadata;
    try {
      await this.custom.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          namespace,
          plural: this.plural,
          name,
          // The uid precondition keeps a status planned for a deleted-and-recreated
          // object of the same name from landing on the new one.
          body: { apiVersion: API_VERSION, kind: this.kind, metadata: { name, namespace, uid }, status },
          fieldManager,
          force: true,
        },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      );
    } catch (error) {
      throw translateKubeError(error, `apply status of ${this.kind} ${namespace}/${name}`);
    }
  }

  async recordEvent(metadata: ObjectMeta, event: InstanceEvent, component: string): Promise<void> {
    const { namespace, name, uid } = metadata;
    const now = new Date();
    try {
      await this.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: `${name}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`, namespace },
          involvedObject: { apiVersion: API_VERSION, kind: this.kind, name, namespace, uid },
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
      throw translateKubeError(error, `record event on ${this.kind} ${namespace}/${name}`);
    }
  }
}
