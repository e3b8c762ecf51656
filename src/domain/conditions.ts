import type { Condition } from './challenge-instance.ts';

/** RFC 3339 with second precision, as Kubernetes writes timestamps. */
export function kubeTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Keeps lastTransitionTime unless the condition's status flips (Kubernetes convention). */
export function mergeCondition(previous: Condition | undefined, next: Omit<Condition, 'lastTransitionTime'>, now: Date): Condition {
  const lastTransitionTime = previous !== undefined && previous.status === next.status ? previous.lastTransitionTime : kubeTime(now);
  return { ...next, lastTransitionTime };
}
