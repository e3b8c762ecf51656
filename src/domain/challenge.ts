import {
  DEFAULT_PULL_POLICY,
  type Condition,
  type EnvVar,
  type FlagSpec,
  type InstanceMeta,
  type InstanceSpec,
  type PortSpec,
  type PullPolicy,
  type ReadinessSpec,
  type ResourceLimits,
  type SecuritySpec,
} from './challenge-instance.ts';
import type { Egress } from './isolation.ts';
import type { PoolSpec } from './pool.ts';

/**
 * The Challenge resource as ctfleet's core sees it: what organisers declare once
 * and teams' instances run (`spec.challengeRef`). These types mirror the CRD in
 * manifests/crds/ctfleet.io_challenges.yaml; the API server has applied its schema
 * and defaults, so the fields it defaults are required here.
 */

/** How long instances of a challenge live once running (before the deployment's cap). */
export interface LifetimeSpec {
  /** An instance without `ttlSeconds` lives this long; absent: `maxSeconds`, or the deployment's maximum. */
  defaultSeconds?: number;
  /** The most `ttlSeconds` an instance may ask for; more is refused, not shortened. */
  maxSeconds?: number;
}

export interface ChallengeSpec {
  image: string;
  imagePullPolicy: PullPolicy;
  command?: string[];
  args?: string[];
  ports: PortSpec[];
  env?: EnvVar[];
  resources?: ResourceLimits;
  security?: SecuritySpec;
  network?: { egress?: Egress };
  lifetime?: LifetimeSpec;
  readiness?: ReadinessSpec;
  flag?: FlagSpec;
  /** Warm pool: idle containers instances claim (docs/pools.md). */
  pool?: PoolSpec;
}

export interface ChallengeStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  /** Instances naming this challenge, and how many of them run. */
  instances?: { total: number; running: number };
  /** Its warm pool, summed over the live workers' heartbeats: idle containers and what the nodes keep. */
  pool?: { idle: number; target: number };
}

/** A Challenge's metadata: the same identity fields as an instance's. */
export type ChallengeMeta = InstanceMeta;

export interface Challenge {
  metadata: ChallengeMeta;
  spec: ChallengeSpec;
  status?: ChallengeStatus;
}

/** The fields an instance with `challengeRef` takes from its Challenge and may not set itself (the CRD's CEL rules say the same). */
export const CHALLENGE_OWNED_FIELDS = ['challenge', 'image', 'imagePullPolicy', 'command', 'args', 'env', 'ports', 'resources', 'security', 'network'] as const;

/**
 * A ChallengeInstance's spec as the API server stores it: the direct form (every
 * {@link InstanceSpec} is one), or the `challengeRef` form without the fields the
 * Challenge supplies.
 */
export type StoredInstanceSpec = Omit<InstanceSpec, 'challenge' | 'image' | 'imagePullPolicy' | 'ports'> &
  Partial<Pick<InstanceSpec, 'challenge' | 'image' | 'imagePullPolicy' | 'ports'>>;

/** The deployment's limits that resolving applies. */
export interface ResolvePolicy {
  /** CTFLEET_MAX_LIFETIME_SECONDS: caps every lifetime, as it does for direct instances. */
  maxLifetimeSeconds: number;
}

export type ResolveFailure = 'ChallengeNotFound' | 'ChallengeDeleting' | 'InvalidSpec';

export type Resolution =
  | {
      ok: true;
      /** The effective spec: a direct spec, without `challengeRef`. */
      spec: InstanceSpec;
      /** The Challenge's `metadata.generation` the spec was made from; undefined for a direct instance. */
      challengeGeneration: number | undefined;
    }
  | { ok: false; reason: ResolveFailure; message: string };

/**
 * The spec an instance runs: its own in the direct form, or its Challenge's
 * container, lifetime, readiness and flag with the instance's team, ttl, desired
 * state and priority. Pure.
 *
 * Guarantees:
 * - A direct spec comes back as it is, only an absent `imagePullPolicy` filled in
 *   with {@link DEFAULT_PULL_POLICY}; every resolved spec is direct, so resolving
 *   a resolved spec changes nothing.
 * - `ttlSeconds` is the instance's, else the Challenge's `lifetime.defaultSeconds`,
 *   else its `lifetime.maxSeconds`, capped by the deployment's maximum; absent when
 *   none of them is set (the deployment's maximum applies, as for direct instances).
 *   An instance asking for more than the Challenge's `lifetime.maxSeconds` is
 *   refused with InvalidSpec, not shortened: the platform asked for something the
 *   organisers ruled out, and a silent cut would surprise the team.
 *
 * - A Challenge being deleted resolves only the instances it admitted
 *   ({@link isAdmittedBy}); one created after its deletion began fails
 *   ChallengeDeleting, so nothing new starts from it.
 *
 * Assumptions: `challenge` is the object named by `spec.challengeRef` in the
 * instance's namespace (undefined when there is none), as the caller's cache holds it.
 *
 * Caveats: the result shares arrays and objects with its inputs; treat it as read-only.
 */
export function resolveInstanceSpec(
  instance: { metadata: { namespace: string; creationTimestamp?: string }; spec: StoredInstanceSpec },
  challenge: Challenge | undefined,
  policy: ResolvePolicy,
): Resolution {
  const { spec } = instance;
  const namespace = instance.metadata.namespace;
  const ref = spec.challengeRef;
  if (ref === undefined) return resolveDirect(spec);

  const stray = CHALLENGE_OWNED_FIELDS.filter((field) => spec[field] !== undefined);
  if (stray.length > 0) {
    const fields = stray.map((field) => `spec.${field}`).join(', ');
    return { ok: false, reason: 'InvalidSpec', message: `The instance sets ${fields} and spec.challengeRef; with spec.challengeRef these come from the Challenge.` };
  }
  if (challenge?.metadata.name !== ref.name || challenge.metadata.namespace !== namespace) {
    return { ok: false, reason: 'ChallengeNotFound', message: `Challenge ${namespace}/${ref.name} does not exist.` };
  }
  if (!isAdmittedBy(instance, challenge)) {
    return {
      ok: false,
      reason: 'ChallengeDeleting',
      message: `Challenge ${namespace}/${ref.name} is being deleted (since ${challenge.metadata.deletionTimestamp ?? 'now'}); it starts no new instances.`,
    };
  }

  const from = challenge.spec;
  const lifetime = from.lifetime ?? {};
  if (spec.ttlSeconds !== undefined && lifetime.maxSeconds !== undefined && spec.ttlSeconds > lifetime.maxSeconds) {
    return {
      ok: false,
      reason: 'InvalidSpec',
      message: `spec.ttlSeconds ${spec.ttlSeconds} is above Challenge ${namespace}/${ref.name}'s lifetime.maxSeconds ${lifetime.maxSeconds}.`,
    };
  }
  const asked = spec.ttlSeconds ?? lifetime.defaultSeconds ?? lifetime.maxSeconds;

  const effective: InstanceSpec = {
    team: spec.team,
    challenge: ref.name,
    image: from.image,
    imagePullPolicy: from.imagePullPolicy,
    ports: from.ports,
    desiredState: spec.desiredState,
    priority: spec.priority,
  };
  if (from.command !== undefined) effective.command = from.command;
  if (from.args !== undefined) effective.args = from.args;
  if (from.env !== undefined) effective.env = from.env;
  if (from.resources !== undefined) effective.resources = from.resources;
  if (from.security !== undefined) effective.security = from.security;
  if (from.network !== undefined) effective.network = from.network;
  if (asked !== undefined) effective.ttlSeconds = Math.min(asked, policy.maxLifetimeSeconds);
  if (from.readiness !== undefined) effective.readiness = from.readiness;
  if (from.flag !== undefined) effective.flag = from.flag;
  return { ok: true, spec: effective, challengeGeneration: challenge.metadata.generation };
}

/** `namespace/name`: the work-queue key of a Challenge. */
export function challengeKey(challenge: { metadata: { namespace: string; name: string } }): string {
  return `${challenge.metadata.namespace}/${challenge.metadata.name}`;
}

/** The key of the Challenge an instance names in `spec.challengeRef` (same namespace); undefined for a direct instance. */
export function challengeKeyOf(instance: { metadata: { namespace: string }; spec: { challengeRef?: { name: string } } }): string | undefined {
  const ref = instance.spec.challengeRef;
  return ref === undefined ? undefined : `${instance.metadata.namespace}/${ref.name}`;
}

/**
 * Whether `challenge` admits `instance`, one that names it: always while the
 * Challenge is not being deleted; once its deletion began, only instances created
 * before it. Admitted instances run to their end and hold the Challenge (its
 * finalizer waits for them); the others fail ChallengeDeleting and hold nothing.
 * Pure.
 *
 * Caveats: the API server records both times to the second, so an instance created
 * in the very second deletion began counts as admitted: a team's instance is not
 * refused for a race it could not see. It runs, and the deletion waits for it
 * unless the finalizer was already released, in which case it finds the Challenge
 * gone (ChallengeNotFound). An instance without a creation time (never one from the
 * API server) is admitted too.
 */
export function isAdmittedBy(instance: { metadata: { creationTimestamp?: string } }, challenge: Challenge): boolean {
  const deleting = challenge.metadata.deletionTimestamp;
  if (deleting === undefined) return true;
  const created = Date.parse(instance.metadata.creationTimestamp ?? '');
  const deletion = Date.parse(deleting);
  if (Number.isNaN(created) || Number.isNaN(deletion)) return true;
  return Math.floor(created / 1000) <= Math.floor(deletion / 1000);
}

function resolveDirect(spec: StoredInstanceSpec): Resolution {
  const missing = (['challenge', 'image', 'ports'] as const).filter((field) => spec[field] === undefined);
  if (spec.challenge === undefined || spec.image === undefined || spec.ports === undefined) {
    const fields = missing.map((field) => `spec.${field}`).join(', ');
    return { ok: false, reason: 'InvalidSpec', message: `The instance has neither spec.challengeRef nor ${fields}.` };
  }
  if (spec.imagePullPolicy !== undefined) return { ok: true, spec: spec as InstanceSpec, challengeGeneration: undefined };
  return { ok: true, spec: { ...spec, challenge: spec.challenge, image: spec.image, ports: spec.ports, imagePullPolicy: DEFAULT_PULL_POLICY }, challengeGeneration: undefined };
}
