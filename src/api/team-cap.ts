import type { ChallengeInstance } from '../domain/challenge-instance.ts';
import { retryClassOf, transient } from '../domain/errors.ts';
import type { TeamSlots } from '../domain/team-slots.ts';
import type { Logger } from '../observability/logger.ts';

/** Listings taken when the store finds one too old (a slow API server). */
const LIST_ATTEMPTS = 3;

/** Whether an instance holds one of its team's slots: one being deleted or expired has freed its own. */
export function holdsSlot(instance: ChallengeInstance): boolean {
  return instance.metadata.deletionTimestamp === undefined && instance.status?.phase !== 'Expired';
}

export type Admission<T> = { admitted: true; value: T } | { admitted: false; held: number };

/**
 * Runs `create` only if the team has a free slot, taking it atomically across
 * every API replica ({@link TeamSlots}). The listing of the team's instances is
 * the truth the store counts from; reservations cover the creates it cannot show
 * yet.
 *
 * Guarantees: a create that certainly made nothing (refused by the API server)
 * frees its slot at once; one whose outcome is unknown (timeout, API server away)
 * keeps it until the reservation lapses, since the instance may exist. A failure
 * to record the outcome never fails a create that succeeded: the reservation
 * lapses on its own.
 */
export async function createWithinCap<T>(
  deps: { slots: TeamSlots; list: () => Promise<ChallengeInstance[]>; logger: Logger },
  request: { namespace: string; team: string; name: string; limit: number },
  create: () => Promise<T>,
): Promise<Admission<T>> {
  const { slots, list, logger } = deps;
  for (let attempt = 1; attempt <= LIST_ATTEMPTS; attempt += 1) {
    const listedAt = await slots.now();
    const listed = (await list()).filter(holdsSlot).map((instance) => instance.metadata.name);
    const verdict = await slots.reserve({ ...request, listedAt, listed });
    if (verdict.kind === 'stale') continue;
    if (verdict.kind === 'full') return { admitted: false, held: verdict.held };
    const { slot } = verdict;
    let value: T;
    try {
      value = await create();
    } catch (error) {
      if (retryClassOf(error) !== 'transient') {
        await slots.release(slot).catch((releaseError: unknown) => {
          logger.warn({ err: releaseError, instance: `${request.namespace}/${request.name}` }, `Releasing the team slot of ${request.namespace}/${request.name} failed; it lapses on its own`);
        });
      }
      throw error;
    }
    await slots.confirm(slot).catch((confirmError: unknown) => {
      logger.warn({ err: confirmError, instance: `${request.namespace}/${request.name}` }, `Recording the team slot of ${request.namespace}/${request.name} failed; its reservation holds it until it lapses`);
    });
    return { admitted: true, value };
  }
  throw transient('ApiUnavailable', `Listing the instances of team ${request.team} took too long ${LIST_ATTEMPTS} times in a row`);
}
