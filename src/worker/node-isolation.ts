import { CtfleetError, permanent, transient } from '../domain/errors.ts';
import { BRIDGE_FILTERING_SETTING, ENGINE_DEFAULT_NETWORK, type Egress, type IsolationPolicy } from '../domain/isolation.ts';
import { INSTANCE_NAME_PREFIX, LABELS, MANAGED_BY } from '../domain/names.ts';
import { POOL_NAME_PREFIX } from '../domain/pool.ts';
import type { Firewall, FirewallHook, InstanceNetworks, NetworkDefinition, NetworkRuntime, PortGuard } from '../domain/ports.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { FIREWALL_CHAINS, FIREWALL_HOOKS, firewallRules, instanceNetworks, planFirewall, planNetworks, poolGuardChain, poolGuardRules } from './isolation-plan.ts';

/**
 * Keeps the node's isolation in place: the instance networks and the firewall
 * rules around them. `ensure()` at start-up (the worker takes no job before it
 * succeeds), `repair()` from every sweep and after the engine comes back. Both
 * read what is there, plan with the pure functions of isolation-plan.ts, and
 * change only what differs, so running them twice, or from two workers at once,
 * changes nothing more.
 */
export class NodeIsolation implements InstanceNetworks, PortGuard {
  private readonly runtime: NetworkRuntime;
  private readonly firewall: Firewall | undefined;
  private readonly policy: IsolationPolicy;
  private readonly logger: Logger;
  private readonly metrics: Metrics | undefined;
  /** The networks this worker makes: both egress classes', or only Internet's when None instances use the engine's default bridge. */
  private readonly networks: Record<Egress, NetworkDefinition>;
  private readonly made: NetworkDefinition[];
  /**
   * The engine's default bridge while it is firewalled as a None bridge: always
   * with CTFLEET_NONE_NETWORK=engine-default, and otherwise while ctfleet's
   * containers are still on it (made before a switch back). Looked up at every
   * repair; `undefined` before the first.
   */
  private cutOff: { bridge: string | undefined } | undefined;
  /** Set while the default bridge is a None bridge but bridged traffic skips iptables: no None container starts. */
  private unfiltered: CtfleetError | undefined;
  private warnedLeftOnBridge = 0;
  /** Settles once networks and rules were in place; cleared when a create finds a network gone. */
  private ready: Promise<void> | undefined;
  private repairing: Promise<void> | undefined;
  private warnedHooks = false;
  /** This node's pool guard chain (docs/pools.md) and the jump to it. */
  private readonly poolChain: string;
  private readonly poolHook: FirewallHook;
  /** Host ports closed to the outside, as last asked; and the rules last written for them. */
  private guarded: ReadonlySet<number> = new Set();
  private guardWritten: string[] | undefined;
  /** Counts guard writes begun: a repair that read the table while one ran cannot judge the chain. */
  private guardWrites = 0;
  private guardRunning: Promise<void> | undefined;
  private guardNext: Promise<void> | undefined;

  constructor(deps: { runtime: NetworkRuntime; firewall: Firewall | undefined; policy: IsolationPolicy; logger: Logger; metrics?: Metrics; node?: string }) {
    this.runtime = deps.runtime;
    this.firewall = deps.policy.firewall ? deps.firewall : undefined;
    this.policy = deps.policy;
    this.logger = deps.logger.child({ component: 'node-isolation' });
    this.metrics = deps.metrics;
    this.networks = instanceNetworks(deps.policy);
    this.made = this.onEngineBridge() ? [this.networks.Internet] : Object.values(this.networks);
    this.poolChain = poolGuardChain(deps.node ?? '');
    this.poolHook = { from: 'DOCKER-USER', to: this.poolChain };
  }

  /**
   * Closes exactly these host ports to forwarded connections (idle pool
   * containers'); resolves once a write that includes this call's set is in
   * the table. Calls during a write share the one write after it.
   */
  async guard(ports: ReadonlySet<number>): Promise<void> {
    this.guarded = new Set(ports);
    if (this.firewall === undefined) return;
    await this.flushGuard();
  }

  private flushGuard(): Promise<void> {
    const write = async (): Promise<void> => {
      const firewall = this.firewall;
      if (firewall === undefined) return;
      // Before the first repair (a worker guarding its predecessor's pool at start), look the bridge up first.
      this.cutOff ??= { bridge: await this.bridgeToCutOff() };
      const rules = poolGuardRules(this.guarded, this.cutOff.bridge);
      if (this.guardWritten !== undefined && rules.length === this.guardWritten.length && rules.every((rule, i) => rule === this.guardWritten?.[i])) return;
      this.guardWritten = undefined;
      this.guardWrites += 1;
      await firewall.replaceChains({ [this.poolChain]: rules });
      this.guardWritten = rules;
    };
    if (this.guardRunning === undefined) {
      this.guardRunning = write().finally(() => {
        this.guardRunning = undefined;
      });
      return this.guardRunning;
    }
    // A write is under way with an older set: one more after it, for everyone asking meanwhile.
    this.guardNext ??= this.guardRunning
      .catch(() => undefined)
      .then(() => {
        this.guardNext = undefined;
        return this.flushGuard();
      });
    return this.guardNext;
  }

  /** The networks and rules, or an error saying why the node cannot isolate instances. */
  async ensure(): Promise<void> {
    if (this.firewall === undefined) {
      this.logger.warn('CTFLEET_FIREWALL is off: instances can reach the node, link-local metadata and private ranges through their gateway. Turn it on for any event with untrusted teams.');
    }
    await this.repairOnce(true);
    this.ready = Promise.resolve();
    this.logger.info(
      {
        networks: this.made.map((network) => `${network.name} ${network.subnet}`),
        ...(this.onEngineBridge() ? { noneNetwork: `${ENGINE_DEFAULT_NETWORK} (${this.cutOff?.bridge ?? '?'})` } : {}),
        firewall: this.firewall !== undefined,
        defaultEgress: this.policy.defaultEgress,
      },
      'Instance networks and firewall rules in place',
    );
  }

  /** Puts back whatever is missing or changed; a repair already running is joined. */
  async repair(): Promise<void> {
    this.repairing ??= this.repairOnce(false).finally(() => {
      this.repairing = undefined;
    });
    return this.repairing;
  }

  /** A container is only created once the networks and the rules are in place. */
  async networkFor(egress: Egress): Promise<{ name: string; dns: string[] }> {
    this.ready ??= this.repair().catch((error: unknown) => {
      this.ready = undefined;
      // A gap around the default bridge is the operator's to close: starts wait for it.
      throw this.unfiltered ?? error;
    });
    await this.ready;
    if (egress === 'None' && this.onEngineBridge()) {
      if (this.unfiltered !== undefined) throw this.unfiltered;
      return { name: ENGINE_DEFAULT_NETWORK, dns: [] };
    }
    return { name: this.networks[egress].name, dns: egress === 'Internet' ? [...this.policy.dnsServers] : [] };
  }

  invalidate(): void {
    this.ready = undefined;
  }

  private onEngineBridge(): boolean {
    return this.policy.noneNetwork === 'engine-default';
  }

  private async repairOnce(starting: boolean): Promise<void> {
    await this.syncNetworks({ starting });
    if (this.firewall !== undefined) await this.repairFirewall(this.firewall, starting);
  }

  /**
   * The default bridge to firewall as a None bridge, or undefined: with
   * engine-default always; otherwise only while instance or pool containers
   * made by ctfleet (its name, its labels, an egress) are on it (fail closed: a
   * switch back to ctfleet's own bridge leaves them there, where nothing else
   * would hold them in).
   */
  private async bridgeToCutOff(): Promise<string | undefined> {
    if (this.onEngineBridge()) return (await this.runtime.inspectDefaultBridge()).bridge;
    const found = await this.runtime.inspectDefaultBridge().catch((error: unknown) => {
      // An engine without a default bridge has nothing of ours on it.
      if (error instanceof CtfleetError && error.retry === 'permanent') return undefined;
      throw error;
    });
    // Named as ctfleet names them (cheap, from the inspect), then labelled as made with an egress (one inspect each).
    const named = found?.containers.filter((name) => name.startsWith(INSTANCE_NAME_PREFIX) || name.startsWith(POOL_NAME_PREFIX)) ?? [];
    const labels = await Promise.all(named.map((name) => this.runtime.labelsOf(name)));
    const left = named.filter((_name, i) => {
      const these = labels[i] ?? {};
      return these[LABELS.managedBy] === MANAGED_BY && these[LABELS.egress] !== undefined;
    });
    if (found === undefined || left.length === 0) return undefined;
    if (left.length !== this.warnedLeftOnBridge) {
      this.warnedLeftOnBridge = left.length;
      this.logger.warn({ containers: left.slice(0, 10), count: left.length, bridge: found.bridge }, `${String(left.length)} of ctfleet's containers are on Docker's default bridge (made with CTFLEET_NONE_NETWORK=engine-default): it stays firewalled as a None network until they are gone`);
    }
    return found.bridge;
  }

  /** Creates missing instance networks and removes ctfleet's other networks no container uses. */
  private async syncNetworks(options: { starting: boolean }): Promise<void> {
    const existing = await this.runtime.listManagedNetworks();
    for (const action of planNetworks(existing, this.made)) {
      if (action.type === 'create') {
        await this.runtime.createNetwork(action.network);
        const { name, subnet, bridge } = action.network;
        if (options.starting) this.logger.info({ network: name, subnet, bridge }, `Created instance network ${name}`);
        else this.logger.warn({ network: name, subnet, bridge }, `Instance network ${name} was missing; created it again`);
        this.metrics?.isolationRepairs.inc({ kind: 'network' });
      } else {
        try {
          await this.runtime.removeNetwork(action.network.id);
          this.logger.info({ network: action.network.name }, `Removed unused network ${action.network.name} (not this deployment's current settings)`);
        } catch (error) {
          // A container joined it since the listing: it drains, and a later sweep removes it.
          if (!(error instanceof CtfleetError && error.code === 'NetworkInUse')) throw error;
        }
      }
    }
  }

  private async repairFirewall(firewall: Firewall, starting: boolean): Promise<void> {
    const bridge = await this.bridgeToCutOff();
    this.cutOff = { bridge };
    const rules = firewallRules(this.policy, bridge);
    const hooks = [...FIREWALL_HOOKS, this.poolHook];
    const writesBefore = this.guardWrites;
    const busyBefore = this.guardRunning !== undefined;
    const observed = await firewall.read([...FIREWALL_CHAINS, this.poolChain], hooks);
    const guardMoved = busyBefore || this.guardRunning !== undefined || this.guardWrites !== writesBefore;
    const plan = planFirewall(observed, rules, hooks);
    // The guard chain first (created if missing), so its jump has somewhere to go.
    // Judged against what was last written: a write under way is not a change.
    // A chain in place as written is rewritten only if the rules for its ports changed (the default bridge cut off or handed back).
    const written = this.guardWritten;
    if (!guardMoved) {
      const lost = written !== undefined && planFirewall(observed, { [this.poolChain]: written }, []).replace;
      if (written === undefined || lost) this.guardWritten = undefined;
      await this.flushGuard();
      if (lost && !starting) this.logger.warn({ chain: this.poolChain }, 'The pool guard chain was changed or missing; restored it');
    }
    if (plan.missingHooks.length > 0 && !this.warnedHooks) {
      this.warnedHooks = true;
      this.logger.error({ chains: plan.missingHooks }, `The filter table has no ${plan.missingHooks.join(' or ')} chain (does dockerd run with --iptables=false?): forwarded traffic from instances is not filtered`);
    }
    if (FIREWALL_CHAINS.some((chain) => planFirewall(observed, { [chain]: rules[chain] ?? [] }, []).replace)) {
      await firewall.replaceChains(rules);
      if (!starting) this.logger.warn({ chains: FIREWALL_CHAINS }, 'Firewall rules were changed or missing; restored them');
      this.metrics?.isolationRepairs.inc({ kind: 'rules' });
    }
    for (const hook of plan.insertJumps) {
      await firewall.insertJump(hook);
      if (!starting) this.logger.warn({ hook: `${hook.from} -> ${hook.to}` }, `The jump from ${hook.from} to ${hook.to} was missing; inserted it again`);
      this.metrics?.isolationRepairs.inc({ kind: 'jump' });
    }
    for (const hook of plan.deleteJumps) {
      await firewall.deleteJump(hook);
      this.logger.info({ hook: `${hook.from} -> ${hook.to}` }, `Removed a surplus jump from ${hook.from} to ${hook.to}`);
      this.metrics?.isolationRepairs.inc({ kind: 'jump' });
    }
    // Docker holds nothing in on its default bridge (inter-container traffic and
    // masquerading on): only these rules do, so with containers of ours there a
    // gap in them is an error, not a warning. Checked after the rules are written.
    const gap = bridge === undefined ? undefined : await this.bridgeGap(firewall, bridge, plan.missingHooks);
    // None starts wait (and retry) while the gap lasts; the worker's start-up stops on it.
    this.unfiltered = gap === undefined ? undefined : transient('FirewallUnavailable', gap);
    if (gap !== undefined) throw permanent('FirewallUnavailable', gap);
  }

  /** Why the rules cannot hold the default bridge's containers in; undefined when they can. */
  private async bridgeGap(firewall: Firewall, bridge: string, missingHooks: readonly string[]): Promise<string | undefined> {
    const cause =
      missingHooks.length > 0
        ? `the filter table has no ${missingHooks.join(' or ')} chain (does dockerd run with --iptables=false?)`
        : (await firewall.filtersBridgedTraffic())
          ? undefined
          : `traffic between containers of one bridge skips iptables here (${BRIDGE_FILTERING_SETTING} is not 1; load br_netfilter and set it to 1)`;
    if (cause === undefined) return undefined;
    return this.onEngineBridge()
      ? `CTFLEET_NONE_NETWORK=engine-default puts None instances on Docker's default bridge (${bridge}), but ${cause}: they would reach each other, the node and the Internet. Fix that, or use CTFLEET_NONE_NETWORK=ctfleet.`
      : `ctfleet's containers are still on Docker's default bridge (${bridge}, made with CTFLEET_NONE_NETWORK=engine-default), but ${cause}: they reach each other and the node. Remove them, or fix that.`;
  }
}
