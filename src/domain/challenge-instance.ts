import type { Egress } from './isolation.ts';
/**
 * The ChallengeInstance resource as ctfleet's core sees it. These types mirror the
 * CRD in manifests/crds/; the API server has already applied its schema and
 * defaults, so fields the schema defaults are required here.
 */

export type Protocol = 'TCP' | 'UDP';
export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';
export type DesiredState = 'Running' | 'Stopped';

export type Phase =
  | 'Pending'
  | 'Scheduled'
  | 'Starting'
  | 'Running'
  | 'Stopping'
  | 'Stopped'
  | 'Failed'
  | 'Expired'
  | 'Terminating';

export interface PortSpec {
  name: string;
  containerPort: number;
  protocol: Protocol;
}

export interface EnvVar {
  name: string;
  value?: string;
}

export interface ResourceLimits {
  cpu?: string;
  memory?: string;
  pids?: number;
}

/** A tmpfs the container gets, e.g. for `/tmp` under a read-only root. */
export interface TmpfsMount {
  /** Absolute, normalised, not `/` and not under /proc, /sys or /dev. */
  path: string;
  /** A memory quantity, e.g. `64Mi`; it also counts against the memory limit once written. */
  size: string;
}

/**
 * What a spec may ask for beyond the deployment's hardening, each within what
 * the deployment allows (src/domain/hardening.ts). Deliberately no field turns
 * off seccomp, AppArmor or no-new-privileges, or runs a container privileged.
 */
export interface SecuritySpec {
  /** Capabilities added to the deployment's kept set, from CTFLEET_ALLOWED_EXTRA_CAPABILITIES. */
  capabilities?: { add?: string[] };
  /** A read-only root filesystem (the deployment may force it for all). */
  readOnlyRootFilesystem?: boolean;
  tmpfs?: TmpfsMount[];
  /** A Docker runtime (e.g. `runsc`) from CTFLEET_ALLOWED_RUNTIMES; absent: the engine's default. */
  runtime?: string;
}

/** The Challenge, in the instance's own namespace, an instance runs. */
export interface ChallengeRef {
  name: string;
}

/** How the worker waits for a started container (a Challenge's `spec.readiness`). */
export interface ReadinessSpec {
  /** Absent: the deployment's CTFLEET_READINESS_TIMEOUT_SECONDS. */
  timeoutSeconds?: number;
}

export type FlagKind = 'Static' | 'PerTeam' | 'PerInstance';
export type FlagDelivery = 'Env' | 'File';

/**
 * A Challenge's `spec.flag`: what flag an instance gets and how it reaches the
 * container. Only names and shapes; a flag's value is never part of a spec.
 */
export interface FlagSpec {
  /** Static: from a Secret; PerTeam: derived per team under the deployment's key; PerInstance: random, in a Secret owned by the instance. */
  kind: FlagKind;
  /** The flag's text with exactly one `%s` where the secret part goes (schema default `flag{%s}`). */
  format: string;
  /** Present exactly when `kind` is Static. */
  static?: { secretKeyRef: { name: string; key: string } };
  delivery: FlagDelivery;
  /** The variable that carries the flag with Env delivery (schema default FLAG). */
  env: string;
  /** The absolute path of the flag file with File delivery (schema default /flag/flag.txt). */
  path: string;
}

/** Pull policy of a spec that names none: the instance CRD has no schema default (see {@link InstanceSpec}). */
export const DEFAULT_PULL_POLICY: PullPolicy = 'IfNotPresent';

/**
 * The spec the controller and the worker act on: an instance's own spec in the
 * direct form, or what `resolveInstanceSpec` (src/domain/challenge.ts) made of a
 * `challengeRef` and its Challenge.
 *
 * Caveats: a ChallengeInstance read from the API server with `challengeRef` has
 * no `challenge`, `image`, `imagePullPolicy` or `ports` (the schema forbids them);
 * resolve it before reading those. `imagePullPolicy` has no schema default, since
 * a default would put it on `challengeRef` instances too; a direct spec without one
 * runs with {@link DEFAULT_PULL_POLICY}, which resolving fills in.
 */
export interface InstanceSpec {
  team: string;
  /** Set only on a stored spec; a resolved spec names its Challenge in `challenge` instead. */
  challengeRef?: ChallengeRef;
  challenge: string;
  image: string;
  imagePullPolicy: PullPolicy;
  ports: PortSpec[];
  env?: EnvVar[];
  command?: string[];
  args?: string[];
  resources?: ResourceLimits;
  security?: SecuritySpec;
  ttlSeconds?: number;
  /** Absent: the deployment's default egress (CTFLEET_DEFAULT_EGRESS). */
  network?: { egress?: Egress };
  desiredState: DesiredState;
  priority: number;
  /** From the Challenge only (the instance CRD has no such field); absent: the deployment's readiness timeout. */
  readiness?: ReadinessSpec;
  /** From the Challenge only; absent: ctfleet gives the container no flag. */
  flag?: FlagSpec;
}

export interface Endpoint {
  name: string;
  host: string;
  port: number;
  protocol: Protocol;
  url?: string;
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/**
 * The job the controller last queued for an instance: which job to look up, not
 * how it is doing. Its state, progress, attempts and result live in Redis (BullMQ);
 * copying them here would cost a status write per job transition and still be a
 * stale snapshot.
 */
export interface LastJob {
  id: string;
  action: string;
  /** The queue the job went to: `start` (any worker) or `node.<name>`. */
  queue?: string;
}

export interface InstanceStatus {
  phase?: Phase;
  reason?: string;
  message?: string;
  observedGeneration?: number;
  node?: string;
  containerId?: string;
  endpoints?: Endpoint[];
  startedAt?: string;
  expiresAt?: string;
  /** How many times the controller moved the instance off a lost node. */
  reschedules?: number;
  conditions?: Condition[];
  lastJob?: LastJob;
  /** The Challenge the running container was made from, and its generation (worker-owned). */
  challenge?: { name: string; generation: number };
}

export interface InstanceMeta {
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  resourceVersion?: string;
}

export interface ChallengeInstance {
  metadata: InstanceMeta;
  spec: InstanceSpec;
  status?: InstanceStatus;
}

/** `namespace/name`: the work-queue key of an instance. */
export function instanceKey(instance: { metadata: { namespace: string; name: string } }): string {
  return `${instance.metadata.namespace}/${instance.metadata.name}`;
}

export function findCondition(status: InstanceStatus | undefined, type: string): Condition | undefined {
  return status?.conditions?.find((condition) => condition.type === type);
}
