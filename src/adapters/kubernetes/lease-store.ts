import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { LeaseRecord, LeaseStore } from '../../domain/ports.ts';
import { isNotFound, retryClassOf } from '../../domain/errors.ts';
import { makePooledApiClient } from './api-client.ts';
import { translateKubeError } from './errors.ts';

interface RawLease {
  metadata?: { resourceVersion?: string };
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

const LEASES = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' } as const;

/**
 * A coordination.k8s.io/v1 Lease as a {@link LeaseStore}.
 *
 * Why the generic objects API: the typed Lease client serialises times as
 * JavaScript dates (millisecond precision), while the API server's MicroTime wants
 * exactly six fractional digits; the elector writes them itself.
 */
export class KubeLeaseStore implements LeaseStore {
  private readonly api: CustomObjectsApi;
  private readonly namespace: string;
  private readonly name: string;

  constructor(kubeConfig: KubeConfig, namespace: string, name: string) {
    this.api = makePooledApiClient(kubeConfig, CustomObjectsApi);
    this.namespace = namespace;
    this.name = name;
  }

  async read(): Promise<LeaseRecord | undefined> {
    try {
      const raw = (await this.api.getNamespacedCustomObject({ ...LEASES, namespace: this.namespace, name: this.name })) as RawLease;
      const spec = raw.spec ?? {};
      const record: LeaseRecord = {
        holderIdentity: spec.holderIdentity,
        leaseDurationSeconds: spec.leaseDurationSeconds ?? 10,
        acquireTime: spec.acquireTime,
        renewTime: spec.renewTime,
        leaseTransitions: spec.leaseTransitions ?? 0,
      };
      if (raw.metadata?.resourceVersion !== undefined) record.resourceVersion = raw.metadata.resourceVersion;
      return record;
    } catch (error) {
      const translated = translateKubeError(error, `read lease ${this.namespace}/${this.name}`);
      if (isNotFound(translated)) return undefined;
      throw translated;
    }
  }

  async create(record: LeaseRecord): Promise<boolean> {
    try {
      await this.api.createNamespacedCustomObject({
        ...LEASES,
        namespace: this.namespace,
        body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.name, namespace: this.namespace }, spec: specOf(record) },
      });
      return true;
    } catch (error) {
      const translated = translateKubeError(error, `create lease ${this.namespace}/${this.name}`);
      if (retryClassOf(translated) === 'conflict') return false;
      throw translated;
    }
  }

  async update(record: LeaseRecord): Promise<boolean> {
    try {
      // A merge patch carrying resourceVersion is a compare-and-swap: 409 if the
      // lease changed since it was read.
      await this.api.patchNamespacedCustomObject(
        { ...LEASES, namespace: this.namespace, name: this.name, body: { metadata: { resourceVersion: record.resourceVersion }, spec: specOf(record) } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      return true;
    } catch (error) {
      const translated = translateKubeError(error, `update lease ${this.namespace}/${this.name}`);
      if (retryClassOf(translated) === 'conflict' || isNotFound(translated)) return false;
      throw translated;
    }
  }
}

function specOf(record: LeaseRecord): Record<string, unknown> {
  return {
    holderIdentity: record.holderIdentity ?? null,
    leaseDurationSeconds: record.leaseDurationSeconds,
    acquireTime: record.acquireTime ?? null,
    renewTime: record.renewTime ?? null,
    leaseTransitions: record.leaseTransitions,
  };
}
