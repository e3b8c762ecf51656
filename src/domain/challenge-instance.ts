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

export interface InstanceSpec {
  team: string;
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
