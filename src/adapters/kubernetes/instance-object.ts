import type { ChallengeInstance } from '../../domain/challenge-instance.ts';
import { permanent } from '../../domain/errors.ts';

interface RawObject {
  metadata?: {
    namespace?: string;
    name?: string;
    uid?: string;
    generation?: number;
    creationTimestamp?: string | Date;
    deletionTimestamp?: string | Date;
    finalizers?: string[];
    resourceVersion?: string;
  };
  spec?: unknown;
  status?: unknown;
}

const timestamp = (value: string | Date | undefined): string | undefined =>
  value === undefined ? undefined : value instanceof Date ? value.toISOString() : value;

/**
 * Narrows a raw API object to a {@link ChallengeInstance}. The API server already
 * validated the spec against the CRD schema; this only checks identity fields.
 */
export function toInstance(raw: unknown): ChallengeInstance {
  const object = raw as RawObject;
  const metadata = object.metadata;
  if (metadata?.namespace === undefined || metadata.name === undefined || metadata.uid === undefined || typeof object.spec !== 'object') {
    throw permanent('MalformedObject', 'a ChallengeInstance from the API server lacks metadata or spec');
  }
  const instance: ChallengeInstance = {
    metadata: {
      namespace: metadata.namespace,
      name: metadata.name,
      uid: metadata.uid,
      generation: metadata.generation ?? 1,
    },
    spec: object.spec as ChallengeInstance['spec'],
  };
  const created = timestamp(metadata.creationTimestamp);
  const deleting = timestamp(metadata.deletionTimestamp);
  if (created !== undefined) instance.metadata.creationTimestamp = created;
  if (deleting !== undefined) instance.metadata.deletionTimestamp = deleting;
  if (metadata.finalizers !== undefined) instance.metadata.finalizers = metadata.finalizers;
  if (metadata.resourceVersion !== undefined) instance.metadata.resourceVersion = metadata.resourceVersion;
  if (typeof object.status === 'object' && object.status !== null) instance.status = object.status;
  return instance;
}
