import type { ChallengeInstance, Condition, InstanceStatus } from '../../src/domain/challenge-instance.ts';
import { FINALIZER } from '../../src/domain/names.ts';

/**
 * One ChallengeInstance for the planners' table tests (the controller's and the
 * node's): team-7's web-101 in namespace ctf, shaped by the overrides.
 */
export const TEST_UID = '3f1c9a2e-0000-4000-8000-000000000001';

export function testInstance(
  overrides: { generation?: number; status?: InstanceStatus; finalizers?: string[]; deleting?: boolean; desiredState?: 'Running' | 'Stopped'; ttlSeconds?: number } = {},
): ChallengeInstance {
  const result: ChallengeInstance = {
    metadata: {
      namespace: 'ctf',
      name: 'web-101-team-7',
      uid: TEST_UID,
      generation: overrides.generation ?? 1,
      finalizers: overrides.finalizers ?? [FINALIZER],
    },
    spec: {
      team: 'team-7',
      challenge: 'web-101',
      image: 'ctfleet-test/web:1',
      imagePullPolicy: 'IfNotPresent',
      ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
      desiredState: overrides.desiredState ?? 'Running',
      priority: 0,
    },
  };
  if (overrides.status !== undefined) result.status = overrides.status;
  if (overrides.ttlSeconds !== undefined) result.spec.ttlSeconds = overrides.ttlSeconds;
  if (overrides.deleting === true) result.metadata.deletionTimestamp = '2026-11-21T11:59:00Z';
  return result;
}

/** A Ready condition as the worker writes it. */
export function readyCondition(status: 'True' | 'False', reason: string, generation: number, message = 'detail'): Condition {
  return { type: 'Ready', status, reason, message, lastTransitionTime: '2026-11-21T11:00:00Z', observedGeneration: generation };
}
