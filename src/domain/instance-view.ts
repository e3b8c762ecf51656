import { findCondition, type ChallengeInstance, type Endpoint, type Phase } from './challenge-instance.ts';
import { isServing, NODE_LOST, READY_REASONS } from './reasons.ts';

/** An instance as people and platforms read it (API and CLI): never its env or command. */
export interface InstanceView {
  team: string;
  challenge: string;
  namespace: string;
  name: string;
  phase: Phase;
  reason: string;
  message: string;
  ready: boolean;
  endpoints: Required<Endpoint>[];
  node: string | null;
  ttlSeconds: number | null;
  expiresAt: string | null;
  createdAt: string | null;
  deleting: boolean;
}

/**
 * How people read an instance. `challenge` is the Challenge it names
 * (`spec.challengeRef.name`), or a direct instance's own `spec.challenge`: an
 * instance of a Challenge, as the API server stores it, has no `spec.challenge`.
 */
export function viewOf(instance: ChallengeInstance): InstanceView {
  const { metadata, spec, status } = instance;
  return {
    team: spec.team,
    challenge: spec.challengeRef?.name ?? spec.challenge,
    namespace: metadata.namespace,
    name: metadata.name,
    phase: status?.phase ?? 'Pending',
    reason: status?.reason ?? '',
    message: status?.message ?? '',
    ready: isServing(findCondition(status, 'Ready')) && metadata.deletionTimestamp === undefined,
    endpoints: (status?.endpoints ?? []).map((endpoint) => ({ name: endpoint.name, host: endpoint.host, port: endpoint.port, protocol: endpoint.protocol, url: endpoint.url ?? '' })),
    node: status?.node ?? null,
    ttlSeconds: spec.ttlSeconds ?? null,
    expiresAt: status?.expiresAt ?? null,
    createdAt: metadata.creationTimestamp ?? null,
    deleting: metadata.deletionTimestamp !== undefined,
  };
}

/** The phase people see: `Terminating` once deletion began, whatever the last status said. */
export function phaseOf(view: Pick<InstanceView, 'phase' | 'deleting'>): Phase {
  return view.deleting ? 'Terminating' : view.phase;
}

/**
 * What went wrong last, as `Reason: message`, or undefined while all is well: the
 * same cases that get a Warning event (Failed, a lost node, a crash restart).
 */
export function lastErrorOf(view: InstanceView): string | undefined {
  const troubled = view.phase === 'Failed' || view.reason === NODE_LOST || view.reason === READY_REASONS.restarting;
  if (!troubled || view.reason === '') return undefined;
  return view.message === '' ? view.reason : `${view.reason}: ${view.message}`;
}
