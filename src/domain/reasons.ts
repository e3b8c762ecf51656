/**
 * Stable, CamelCase reasons of the Ready condition, as the worker reports them.
 * They appear in `status.reason`, in Events and as metric labels: never rename one.
 */
export const READY_REASONS = {
  /** Ready=True: the container runs and passed its readiness check: it serves. */
  ready: 'ContainerReady',
  /** Ready=True: the container is stopped, as spec.desiredState asks. */
  stopped: 'ContainerStopped',
  /** Ready=True: the container was removed because the instance's lifetime ended. */
  removed: 'ContainerRemoved',
  /** The container exited behind ctfleet's back and the worker restarts it. */
  restarting: 'ContainerRestarting',
  /** It exited more often than the restart policy allows: Failed until the spec changes. */
  crashLoop: 'CrashLoop',
} as const;

/**
 * Whether an instance's container serves: Ready=True because it is ready. Ready
 * reads True whenever the instance is as its spec asks (GitOps engines read it so:
 * a stopped or expired instance is done, not in progress), so "it serves" is
 * Ready=True with reason ContainerReady.
 */
export function isServing(ready: { status: string; reason: string } | undefined): boolean {
  return ready?.status === 'True' && ready.reason === READY_REASONS.ready;
}

/** Condition reason (type Scheduled) and status reason of instances whose node stopped sending heartbeats. */
export const NODE_LOST = 'NodeLost';

/** Failures that retrying the same spec will not fix: the instance waits for a spec change. */
export const PERMANENT_REASONS = [
  /** The image is not on the deployment's allow-list (CTFLEET_ALLOWED_IMAGES). */
  'ImageNotAllowed',
  'ImagePullFailed',
  'ImageNotPresent',
  'PortConflict',
  'PortsExhausted',
  'ContainerExited',
  /** The kernel's OOM killer ended the container before it became ready: it needs more memory than its limit. */
  'OOMKilled',
  'ReadinessTimeout',
  'InvalidSpec',
  'InvalidJob',
  'ContainerCreateFailed',
  /** spec.security.runtime is allowed by the deployment but not registered with the node's engine. */
  'UnknownRuntime',
  'CrashLoop',
  /**
   * spec.challengeRef names no Challenge in the instance's namespace. Creating the
   * Challenge, not a retry, fixes it: the instance waits for either it or a spec change.
   */
  'ChallengeNotFound',
  /**
   * The instance was created after deletion of its Challenge began: a Challenge
   * being deleted starts nothing new. Once the Challenge is gone the instance is
   * ChallengeNotFound; creating the Challenge again runs it.
   */
  'ChallengeDeleting',
  /**
   * The deployment key of per-team flags is missing or unusable (CTFLEET_FLAG_KEY_SECRET
   * unset, its Secret or key missing, fewer than 32 bytes). Fixed by the operator, not by a spec.
   */
  'FlagKeyInvalid',
  /**
   * A flag's Secret is missing, lacks its key, holds no usable value, or (an instance's
   * own) exists without being owned by that instance: ctfleet never reuses it.
   */
  'FlagSecretInvalid',
] as const;

export type PermanentReason = (typeof PERMANENT_REASONS)[number];

/**
 * The codes of every other error ctfleet raises: transient ones (retry with
 * backoff), conflicts, not-found, and what a worker reports for an error that is
 * not ctfleet's own.
 */
export const OTHER_ERROR_CODES = [
  'DockerUnavailable',
  'ApiUnavailable',
  'ApiUnreachable',
  'QueueUnavailable',
  /** Redis did not answer a command outside the queues (the platform API's team slots). */
  'RedisUnavailable',
  'ShuttingDown',
  'Conflict',
  'NotFound',
  'Forbidden',
  'Invalid',
  'ContainerGone',
  'NameInUse',
  'MalformedObject',
  'NetworkUnavailable',
  'NetworkInUse',
  'FirewallUnavailable',
  'PoolFilesUnavailable',
  'WorkerError',
] as const;

/** Every code a `CtfleetError` may carry, defined once: the two lists above. */
export type ErrorCode = PermanentReason | (typeof OTHER_ERROR_CODES)[number];

export function isPermanentReason(reason: string): reason is PermanentReason {
  return (PERMANENT_REASONS as readonly string[]).includes(reason);
}

/** A failed job whose message carries no code of ctfleet's. */
export const JOB_FAILED = 'JobFailed';

/**
 * Reasons the controller writes (`status.reason`, the Scheduled condition, its
 * Events). Like the Ready reasons, they are API: never rename one.
 */
export const CONTROLLER_REASONS = {
  waitingForWorker: 'WaitingForWorker',
  startingContainer: 'StartingContainer',
  stoppingContainer: 'StoppingContainer',
  stopped: 'Stopped',
  stopFailed: 'StopFailed',
  lifetimeEnded: 'LifetimeEnded',
  removingContainer: 'RemovingContainer',
  waitingForStartJob: 'WaitingForStartJob',
  cleanupFailed: 'CleanupFailed',
  deleted: 'Deleted',
  /** Scheduled=True: the instance has a node. */
  placed: 'Placed',
  /** Scheduled=True: a start job waits for any worker. */
  queued: 'Queued',
  /** Scheduled=False: no container is placed. */
  notPlaced: 'NotPlaced',
} as const;

/**
 * Condition types of the abnormal-true pair GitOps engines read (kstatus, used by
 * Flux, kpt and cli-utils; Argo CD health checks read the same): Reconciling=True
 * while the controller works towards the spec, Stalled=True when it will not get
 * there without a change. Both read False otherwise, with the phase as reason.
 */
export const GITOPS_CONDITIONS = { reconciling: 'Reconciling', stalled: 'Stalled' } as const;

/**
 * Reasons the controller writes on a Challenge (its Ready condition, its Events).
 * API like the others: never rename one.
 */
export const CHALLENGE_REASONS = {
  /** Ready=True: the controller counts its instances. */
  ready: 'Ready',
  /** Ready=False: the Challenge is being deleted and instances admitted before that still name it. */
  instancesExist: 'InstancesExist',
  /** Warning Event, once per deletion: the deletion waits for the instances. */
  deletionBlocked: 'DeletionBlocked',
} as const;

/** Why a worker skipped a job (`reason` of its outcome): the job no longer matches its instance. */
export const SKIP_REASONS = {
  instanceGone: 'InstanceGone',
  instanceDeleting: 'InstanceDeleting',
  /** The instance has a newer generation than the job. */
  superseded: 'Superseded',
  /** The instance's lifetime ended: a late start job does not bring it back. */
  expired: 'Expired',
  /** A start job whose spec hash is not the instance's: it was not written by this instance's controller. */
  specMismatch: 'SpecMismatch',
  /** No verdict was planned for the job (a planner bug): it is settled rather than left hanging. */
  notPlanned: 'NotPlanned',
} as const;

/** A stop or remove that found nothing to act on. */
export const ALREADY_GONE = 'AlreadyGone';

/** Why a worker removes a container nobody asked it to remove (log lines, `ctfleet_drift_repairs_total`). */
export const REMOVAL_REASONS = {
  noInstance: 'NoInstance',
  /** A second container of the instance, under another name. */
  duplicate: 'Duplicate',
  instanceDeleting: 'InstanceDeleting',
  placedElsewhere: 'PlacedElsewhere',
  expired: 'Expired',
} as const;

export type RemovalReason = (typeof REMOVAL_REASONS)[keyof typeof REMOVAL_REASONS];
