import { instanceLabels } from './container-shape.ts';
import { hasPoolName, POOL_LABEL, type ClaimRecord } from '../domain/pool.ts';
import type { ContainerInfo, PoolClaimStore } from '../domain/ports.ts';

/**
 * The node's claims of warm pool containers, in memory and in the claim store
 * (docs/pools.md). A claimed pool container carries its Challenge's labels
 * only; Docker cannot add the instance's. `apply` gives it the labels its claim
 * stands for, so everything that finds an instance's container by its labels
 * (observe, the sweep, exit events, adopt-or-replace) treats it like any other.
 *
 * Guarantees: a container is claimed at most once (the store's HSETNX decides,
 * across processes); the in-memory copy only ever holds claims the store took.
 */
export class ClaimBook {
  private readonly store: PoolClaimStore;
  private readonly node: string;
  private readonly claims = new Map<string, ClaimRecord>();

  constructor(store: PoolClaimStore, node: string) {
    this.store = store;
    this.node = node;
  }

  /** Reads the node's claims back (after a restart). */
  async load(): Promise<void> {
    const loaded = await this.store.load(this.node);
    this.claims.clear();
    for (const [id, record] of loaded) this.claims.set(id, record);
  }

  /** Claims the container for an instance; false when it was claimed before, by anyone. */
  async claim(containerId: string, record: ClaimRecord): Promise<boolean> {
    if (this.claims.has(containerId)) return false;
    const won = await this.store.claim(this.node, containerId, record);
    if (won) this.claims.set(containerId, record);
    return won;
  }

  /** The claim of a container, if it has one. */
  get(containerId: string): ClaimRecord | undefined {
    return this.claims.get(containerId);
  }

  /** Containers claimed for this instance uid. */
  idsOf(uid: string): string[] {
    return [...this.claims].filter(([, claim]) => claim.uid === uid).map(([id]) => id);
  }

  /** Labels as if the container had been made for its claimant; any other container's, unchanged. */
  labelsOf(containerId: string, labels: Record<string, string>): Record<string, string> {
    const claim = labels[POOL_LABEL] === undefined ? undefined : this.claims.get(containerId);
    return claim === undefined ? labels : { ...labels, ...instanceLabels(claim) };
  }

  apply(container: ContainerInfo): ContainerInfo {
    const labels = this.labelsOf(container.id, container.labels);
    return labels === container.labels ? container : { ...container, labels };
  }

  /**
   * True for a pool container no instance holds: idle (its pool name, no claim),
   * or renamed by a claim whose record is lost. Such containers are the pool
   * keeper's, never an instance's.
   */
  isUnclaimedPoolContainer(container: ContainerInfo): boolean {
    return container.labels[POOL_LABEL] !== undefined && !this.claims.has(container.id);
  }

  /** True for a pool container claimed while its claim did not finish: it still has its pool name. */
  isAbandonedClaim(container: ContainerInfo): boolean {
    return this.claims.has(container.id) && hasPoolName(container.name);
  }

  /** The container is gone: its claim goes too. */
  async forget(containerIds: readonly string[]): Promise<void> {
    const known = containerIds.filter((id) => this.claims.has(id));
    if (known.length === 0) return;
    await this.store.forget(this.node, known);
    for (const id of known) this.claims.delete(id);
  }

  /** Forgets claims of containers no longer on the node (removed behind the worker's back). */
  async prune(existing: ReadonlySet<string>): Promise<void> {
    await this.forget([...this.claims.keys()].filter((id) => !existing.has(id)));
  }
}
