/**
 * Stable, CamelCase reasons of the Ready condition, as the worker reports them.
 * They appear in `status.reason`, in Events and as metric labels: never rename one.
 */
export const READY_REASONS = {
  ready: 'ContainerReady',
  stopped: 'ContainerStopped',
  removed: 'ContainerRemoved',
  /** The container exited behind ctfleet's back and the worker restarts it. */
  restarting: 'ContainerRestarting',
  /** It exited more often than the restart policy allows: Failed until the spec changes. */
  crashLoop: 'CrashLoop',
} as const;

/** Condition reason (type Scheduled) and status reason of instances whose node stopped sending heartbeats. */
export const NODE_LOST = 'NodeLost';

/** Failures that retrying the same spec will not fix: the instance waits for a spec change. */
export const PERMANENT_REASONS = [
  'ImagePullFailed',
  'ImageNotPresent',
  'PortConflict',
  'PortsExhausted',
  'ContainerExited',
  'ReadinessTimeout',
  'InvalidSpec',
  'InvalidJob',
  'ContainerCreateFailed',
  'CrashLoop',
] as const;

export type PermanentReason = (typeof PERMANENT_REASONS)[number];

export function isPermanentReason(reason: string): reason is PermanentReason {
  return (PERMANENT_REASONS as readonly string[]).includes(reason);
}
