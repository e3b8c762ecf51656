import type { ChallengeInstance, FlagDelivery, FlagKind, Protocol } from '../domain/challenge-instance.ts';
import type { Challenge } from '../domain/challenge.ts';

/**
 * A Challenge as the platform API shows it (`GET /v1/challenges`): what a
 * platform needs to offer it to teams. Never its image, command, args, env or
 * limits (organisers' business, and env may hold secrets), nor anything of its
 * flag but the kind and the delivery: no format, no Secret name. (The dashboard and
 * the CLI show organisers more: `src/domain/challenge-view.ts`.)
 */
export interface PlatformChallengeView {
  name: string;
  ports: { name: string; protocol: Protocol }[];
  /** Seconds; null where the Challenge sets none (the deployment's maximum applies). */
  lifetime: { defaultSeconds: number | null; maxSeconds: number | null };
  flag: { kind: FlagKind; delivery: FlagDelivery } | null;
  /** Instances that name this Challenge (`spec.challengeRef`), and how many of them run. */
  instances: { total: number; running: number };
  /** Being deleted: it starts no new instance. */
  deleting: boolean;
  createdAt: string | null;
}

/**
 * The views of `challenges`, with their instances counted from `instances` (one
 * listing of the same namespace). Pure.
 */
export function platformChallengeViews(challenges: readonly Challenge[], instances: readonly ChallengeInstance[]): PlatformChallengeView[] {
  const counts = new Map<string, { total: number; running: number }>();
  for (const instance of instances) {
    const name = instance.spec.challengeRef?.name;
    if (name === undefined) continue;
    const count = counts.get(name) ?? { total: 0, running: 0 };
    count.total += 1;
    if (instance.status?.phase === 'Running' && instance.metadata.deletionTimestamp === undefined) count.running += 1;
    counts.set(name, count);
  }
  return challenges.map(({ metadata, spec }) => ({
    name: metadata.name,
    ports: spec.ports.map((port) => ({ name: port.name, protocol: port.protocol })),
    lifetime: { defaultSeconds: spec.lifetime?.defaultSeconds ?? null, maxSeconds: spec.lifetime?.maxSeconds ?? null },
    flag: spec.flag === undefined ? null : { kind: spec.flag.kind, delivery: spec.flag.delivery },
    instances: counts.get(metadata.name) ?? { total: 0, running: 0 },
    deleting: metadata.deletionTimestamp !== undefined,
    createdAt: metadata.creationTimestamp ?? null,
  }));
}
