import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Challenge } from '../../domain/challenge.ts';
import { isNotFound, permanent } from '../../domain/errors.ts';
import { CHALLENGE_KIND, CHALLENGE_PLURAL, GROUP, VERSION } from '../../domain/names.ts';
import type { ChallengeCache, ChallengeSource } from '../../domain/ports.ts';
import type { Logger } from '../../observability/logger.ts';
import { makePooledApiClient } from './api-client.ts';
import { translateKubeError } from './errors.ts';
import { KubeObjectCache } from './object-cache.ts';

interface RawChallenge {
  metadata?: { namespace?: string; name?: string; uid?: string; generation?: number; creationTimestamp?: string | Date; deletionTimestamp?: string | Date; finalizers?: string[]; resourceVersion?: string };
  spec?: unknown;
  status?: unknown;
}

const timestamp = (value: string | Date | undefined): string | undefined => (value === undefined ? undefined : value instanceof Date ? value.toISOString() : value);

/**
 * Narrows a raw API object to a {@link Challenge}. The API server validated the
 * spec against the CRD schema; this checks identity fields only.
 */
export function toChallenge(raw: unknown): Challenge {
  const object = raw as RawChallenge;
  const metadata = object.metadata;
  if (metadata?.namespace === undefined || metadata.name === undefined || metadata.uid === undefined || typeof object.spec !== 'object' || object.spec === null) {
    throw permanent('MalformedObject', 'a Challenge from the API server lacks metadata or spec');
  }
  const challenge: Challenge = {
    metadata: { namespace: metadata.namespace, name: metadata.name, uid: metadata.uid, generation: metadata.generation ?? 1 },
    spec: object.spec as Challenge['spec'],
  };
  const created = timestamp(metadata.creationTimestamp);
  const deleting = timestamp(metadata.deletionTimestamp);
  if (created !== undefined) challenge.metadata.creationTimestamp = created;
  if (deleting !== undefined) challenge.metadata.deletionTimestamp = deleting;
  if (metadata.finalizers !== undefined) challenge.metadata.finalizers = metadata.finalizers;
  if (metadata.resourceVersion !== undefined) challenge.metadata.resourceVersion = metadata.resourceVersion;
  if (typeof object.status === 'object' && object.status !== null) challenge.status = object.status;
  return challenge;
}

/** The controller's cache of Challenges (see {@link KubeObjectCache} for its guarantees). */
export class KubeChallengeCache extends KubeObjectCache<Challenge> implements ChallengeCache {
  constructor(kubeConfig: KubeConfig, logger: Logger, namespaces: readonly string[] = []) {
    super(kubeConfig, logger, namespaces, { plural: CHALLENGE_PLURAL, kind: CHALLENGE_KIND, convert: toChallenge });
  }
}

/**
 * Challenges read from the API server, not a cache: the worker gets one each time
 * it makes a container (the authority), the dashboard and the CLI list them, and
 * the platform API gets or lists them when a platform names or lists challenges.
 */
export class KubeChallengeSource implements ChallengeSource {
  private readonly custom: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.custom = makePooledApiClient(kubeConfig, CustomObjectsApi);
  }

  async get(namespace: string, name: string): Promise<Challenge | undefined> {
    try {
      return toChallenge(await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: CHALLENGE_PLURAL, name }));
    } catch (error) {
      const translated = translateKubeError(error, `get Challenge ${namespace}/${name}`);
      if (isNotFound(translated)) return undefined;
      throw translated;
    }
  }

  /** Every Challenge of these namespaces (all when empty). */
  async list(namespaces: readonly string[] = []): Promise<Challenge[]> {
    try {
      const lists = namespaces.length === 0
        ? [await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: CHALLENGE_PLURAL })]
        : await Promise.all(namespaces.map((namespace) => this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: CHALLENGE_PLURAL })));
      return lists.flatMap((raw) => ((raw as { items?: unknown[] }).items ?? []).map(toChallenge));
    } catch (error) {
      throw translateKubeError(error, 'list Challenges');
    }
  }
}
