/**
 * Stable, CamelCase reasons of the Ready condition, as the worker reports them.
 * They appear in `status.reason`, in Events and as metric labels: never rename one.
 */
export const READY_REASONS = {
  ready: 'ContainerReady',
  stopped: 'ContainerStopped',
  removed: 'ContainerRemoved',
} as const;

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
] as const;

export type PermanentReason = (typeof PERMANENT_REASONS)[number];

export function isPermanentReason(reason: string): reason is PermanentReason {
  return (PERMANENT_REASONS as readonly string[]).includes(reason);
}
