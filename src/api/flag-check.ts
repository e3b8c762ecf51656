import type { ChallengeInstance } from '../domain/challenge-instance.ts';
import type { Challenge } from '../domain/challenge.ts';
import { flagMatches, perTeamFlagPart, renderFlag } from '../domain/flags.ts';
import type { FlagOwner, SecretKeyRef } from '../domain/ports.ts';

/**
 * What checking a flag reads: the reading half of the flag store
 * (`KubeFlagSecrets`). Nothing here creates a Secret, so the API needs only `get`
 * on Secrets.
 */
export interface FlagReader {
  deploymentKey(): Promise<Buffer>;
  /** The instance's part, or undefined while it has none (its container never started). */
  existingInstanceFlagPart(owner: FlagOwner): Promise<string | undefined>;
  staticFlag(namespace: string, ref: SecretKeyRef): Promise<string>;
}

export type FlagCheck = { kind: 'checked'; correct: boolean } | { kind: 'noFlag' };

/**
 * Whether `given` is the flag `team` was handed for `challenge`. Per kind:
 *
 * - PerTeam: derived again from the deployment key, the Challenge's namespace and
 *   name, and the team.
 * - PerInstance: the part in the flag Secret of the team's instance of the
 *   Challenge, `instance` (the one the platform API names, `instanceName(team,
 *   challenge)`). No instance, an instance of another team or challenge (or a
 *   direct one, which gets no flag), or one whose container never started (no part yet): no flag was handed out, so none
 *   is correct.
 * - Static: the organiser's Secret, the same for every team.
 *
 * Guarantees: the comparison is `flagMatches` (constant time in where the strings
 * differ); the result says only correct or not. Neither the given nor the expected
 * flag is logged, thrown or returned: errors are the flag store's and `renderFlag`'s,
 * which name Secrets, keys and counts, never values.
 *
 * Assumptions: `instance` is read from the API server, not a cache, so a reset
 * instance (deleted and created again) is checked against its new part.
 */
export async function checkFlag(
  flags: FlagReader,
  request: { challenge: Challenge; team: string; given: string; instance: () => Promise<ChallengeInstance | undefined> },
): Promise<FlagCheck> {
  const { challenge, team, given } = request;
  const spec = challenge.spec.flag;
  if (spec === undefined) return { kind: 'noFlag' };
  const { namespace, name } = challenge.metadata;
  let part: string | undefined;
  switch (spec.kind) {
    case 'PerTeam':
      part = perTeamFlagPart(await flags.deploymentKey(), { namespace, challenge: name, team });
      break;
    case 'PerInstance': {
      const instance = await request.instance();
      if (instance === undefined || !isInstanceOf(instance, team, name)) return { kind: 'checked', correct: false };
      part = await flags.existingInstanceFlagPart({ namespace: instance.metadata.namespace, name: instance.metadata.name, uid: instance.metadata.uid });
      break;
    }
    case 'Static':
      if (spec.static === undefined) return { kind: 'noFlag' };
      part = await flags.staticFlag(namespace, spec.static.secretKeyRef);
      break;
  }
  if (part === undefined) return { kind: 'checked', correct: false };
  return { kind: 'checked', correct: flagMatches(renderFlag(spec.format, part), given) };
}

/** Whether `instance` is `team`'s instance of the Challenge `challenge` (a direct instance gets no flag from a Challenge). */
function isInstanceOf(instance: ChallengeInstance, team: string, challenge: string): boolean {
  return instance.spec.team === team && instance.spec.challengeRef?.name === challenge;
}
