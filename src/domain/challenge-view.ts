import type { FlagDelivery, FlagKind, Phase } from './challenge-instance.ts';
import type { Challenge } from './challenge.ts';
import { phaseOf, type InstanceView } from './instance-view.ts';

/** Every phase in lifecycle order: the columns of per-phase counts. */
export const PHASES: readonly Phase[] = ['Pending', 'Scheduled', 'Starting', 'Running', 'Stopping', 'Stopped', 'Failed', 'Expired', 'Terminating'];

/** How many instances a challenge has, in all and per phase as people see it ({@link phaseOf}). */
export interface InstanceCounts {
  total: number;
  running: number;
  /** Every phase of {@link PHASES}, zero included. */
  phases: Record<Phase, number>;
}

/**
 * A challenge as people read it (dashboard and CLI): what it runs and how many
 * instances it has in each phase. Never its env, command, args, flag format or
 * flag Secret: organisers may keep secrets in any of them.
 */
export interface ChallengeView {
  namespace: string;
  name: string;
  /**
   * False for a name instances use that no Challenge of their namespace declares:
   * direct instances, or instances of a missing Challenge (ChallengeNotFound).
   */
  declared: boolean;
  image: string | null;
  /** The flag's kind and delivery; null without a flag (or without a Challenge). */
  flag: { kind: FlagKind; delivery: FlagDelivery } | null;
  generation: number | null;
  createdAt: string | null;
  deleting: boolean;
  instances: InstanceCounts;
  /** Its warm pool: the size asked for and the idle containers the workers last reported; null without one. */
  pool: { size: number; idle: number } | null;
}

/** Natural order: web-7 before web-12. */
const byText = (a: string, b: string): number => a.localeCompare(b, 'en', { numeric: true });

function noInstances(): InstanceCounts {
  return { total: 0, running: 0, phases: Object.fromEntries(PHASES.map((phase) => [phase, 0])) as Record<Phase, number> };
}

/**
 * One view per Challenge, and one per challenge name that instances use without a
 * Challenge, each with its instances counted per phase; sorted by namespace, then
 * name. Pure.
 *
 * Instances are grouped by namespace and {@link InstanceView.challenge} (the
 * Challenge an instance names, or a direct instance's own `spec.challenge`), so a
 * direct instance whose `challenge` is a Challenge's name counts with that
 * Challenge, as it shows under that name on the instance page; a Challenge's
 * `status.instances` may count only the instances that name it in
 * `spec.challengeRef`.
 */
export function summariseChallenges(challenges: readonly Challenge[], instances: readonly InstanceView[]): ChallengeView[] {
  const views = new Map<string, ChallengeView>();
  const keyOf = (namespace: string, name: string): string => `${namespace}/${name}`;
  for (const { metadata, spec, status } of challenges) {
    views.set(keyOf(metadata.namespace, metadata.name), {
      namespace: metadata.namespace,
      name: metadata.name,
      declared: true,
      image: spec.image,
      flag: spec.flag === undefined ? null : { kind: spec.flag.kind, delivery: spec.flag.delivery },
      generation: metadata.generation,
      createdAt: metadata.creationTimestamp ?? null,
      deleting: metadata.deletionTimestamp !== undefined,
      instances: noInstances(),
      pool: spec.pool === undefined ? null : { size: spec.pool.size, idle: status?.pool?.idle ?? 0 },
    });
  }
  for (const instance of instances) {
    const key = keyOf(instance.namespace, instance.challenge);
    let view = views.get(key);
    if (view === undefined) {
      view = { namespace: instance.namespace, name: instance.challenge, declared: false, image: null, flag: null, generation: null, createdAt: null, deleting: false, instances: noInstances(), pool: null };
      views.set(key, view);
    }
    const phase = phaseOf(instance);
    view.instances.total += 1;
    view.instances.phases[phase] += 1;
    if (phase === 'Running') view.instances.running += 1;
  }
  return [...views.values()].sort((a, b) => byText(a.namespace, b.namespace) || byText(a.name, b.name));
}

/** `PerTeam/File`, or `-` without a flag: names only, never a flag. */
export function flagSummary(flag: ChallengeView['flag']): string {
  return flag === null ? '-' : `${flag.kind}/${flag.delivery}`;
}

