import type { ContainerInfo } from '../adapters/docker/container-runtime.ts';
import { findCondition, type ChallengeInstance } from '../domain/challenge-instance.ts';
import { containerName, LABELS } from '../domain/names.ts';
import { READY_REASONS } from '../domain/reasons.ts';

/** What one sweep of a node decides for a container or an instance. */
export type DriftAction =
  | { type: 'remove'; container: ContainerInfo; reason: 'NoInstance' | 'Duplicate' | 'InstanceDeleting' | 'PlacedElsewhere' | 'Expired' }
  | { type: 'stop'; container: ContainerInfo; instance: ChallengeInstance }
  /** Should run here and does not: restart the container, or re-create it when it is gone. */
  | { type: 'revive'; instance: ChallengeInstance; container: ContainerInfo | undefined }
  /** Runs as it should. */
  | { type: 'healthy'; instance: ChallengeInstance; container: ContainerInfo };

export interface DriftInput {
  node: string;
  /** The deployment's namespaces (empty: all): containers of others are not its business. */
  namespaces: readonly string[];
  /** Every container on this node that carries ctfleet's labels. */
  containers: ContainerInfo[];
  /** Every ChallengeInstance, listed after the containers. */
  instances: ChallengeInstance[];
  /** A job or repair of this uid runs now or just ended: leave it alone this round. */
  isBusy: (uid: string) => boolean;
  now: number;
  /** Containers younger than this are left alone: their instance may not say so yet. */
  graceMs: number;
}

/**
 * Level-triggered comparison of what runs on this node with what should. Pure.
 *
 * Only containers this node's worker created, in the deployment's namespaces,
 * are looked at. A container is an orphan when no instance has its uid, when it is not the one
 * container its instance may have (another name), when its instance is being
 * deleted or has expired, or when its instance now lives on another node. An
 * instance placed here that was ready for its current generation must have a
 * running container. Instances still in a job's hands (not ready for their
 * generation) are the controller's and the queue's to finish, not the sweep's.
 */
export function planDrift(input: DriftInput): DriftAction[] {
  const { node, namespaces, containers, instances, isBusy, now, graceMs } = input;
  const byUid = new Map(instances.map((instance) => [instance.metadata.uid, instance]));
  const actions: DriftAction[] = [];
  const owned = new Map<string, ContainerInfo>();

  for (const container of containers) {
    // Only this worker's own containers: another worker's (several sharing one
    // engine) or another deployment's are not its to judge.
    if (container.labels[LABELS.node] !== node) continue;
    if (namespaces.length > 0 && !namespaces.includes(container.labels[LABELS.namespace] ?? '')) continue;
    const uid = container.labels[LABELS.uid] ?? '';
    if (isBusy(uid) || now - container.createdAt < graceMs) continue;
    const instance = byUid.get(uid);
    if (instance === undefined) {
      actions.push({ type: 'remove', container, reason: 'NoInstance' });
      continue;
    }
    const { metadata, spec, status } = instance;
    if (container.name !== containerName(metadata.namespace, metadata.name)) actions.push({ type: 'remove', container, reason: 'Duplicate' });
    else if (metadata.deletionTimestamp !== undefined) actions.push({ type: 'remove', container, reason: 'InstanceDeleting' });
    else if (status?.node !== undefined && status.node !== '' && status.node !== node) actions.push({ type: 'remove', container, reason: 'PlacedElsewhere' });
    else if (status?.phase === 'Expired') actions.push({ type: 'remove', container, reason: 'Expired' });
    else {
      owned.set(uid, container);
      if (spec.desiredState === 'Stopped' && container.running) actions.push({ type: 'stop', container, instance });
    }
  }

  for (const instance of instances) {
    const { metadata, spec, status } = instance;
    if (status?.node !== node || isBusy(metadata.uid)) continue;
    if (metadata.deletionTimestamp !== undefined || spec.desiredState !== 'Running' || status.phase === 'Expired') continue;
    const ready = findCondition(status, 'Ready');
    const wasRunning = ready?.observedGeneration === metadata.generation && (ready.status === 'True' || ready.reason === READY_REASONS.restarting);
    if (!wasRunning) continue;
    const container = owned.get(metadata.uid);
    if (container?.running === true) actions.push({ type: 'healthy', instance, container });
    else actions.push({ type: 'revive', instance, container });
  }
  return actions;
}
