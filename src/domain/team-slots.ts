/**
 * The port behind the platform API's per-team instance cap: slots shared by every
 * API replica (Redis in production, `src/adapters/redis/team-slots-store.ts`).
 *
 * A team's slots are held by the instances a listing of the API server shows,
 * plus reservations of creates in flight and creates confirmed after that listing
 * began (which it may have missed), each name counted once. The check and the
 * reservation are one atomic step, so two requests (on one replica or two) can
 * never both take the last slot.
 */
export interface TeamSlots {
  /** The store's clock in ms; read it just before listing the team's instances. */
  now(): Promise<number>;
  /** Takes a slot for `name` unless the team is at its limit; a name held already is admitted again. */
  reserve(request: SlotRequest): Promise<SlotVerdict>;
  /** The create succeeded: the slot stays held until listings taken from now on show the instance. */
  confirm(slot: SlotRef): Promise<void>;
  /** The create certainly made nothing: the slot is free at once. */
  release(slot: SlotRef): Promise<void>;
}

export interface SlotRequest {
  namespace: string;
  team: string;
  /** The instance to be created. */
  name: string;
  limit: number;
  /** {@link TeamSlots.now} read before the listing began. */
  listedAt: number;
  /** Names of the team's instances that hold a slot, as that listing showed them. */
  listed: readonly string[];
}

/** One reservation: the instance and the token that tells it from another request's for the same name. */
export interface SlotRef {
  namespace: string;
  team: string;
  name: string;
  token: string;
}

/**
 * `reserved`: the slot is this request's until confirmed, released or expired.
 * `full`: the team holds `held` slots, its limit. `stale`: the listing is older
 * than the store accepts (it may miss creates whose record already lapsed); list again.
 */
export type SlotVerdict = { kind: 'reserved'; slot: SlotRef; held: number } | { kind: 'full'; held: number } | { kind: 'stale' };
