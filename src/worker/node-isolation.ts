import { CtfleetError } from '../domain/errors.ts';
import type { Egress, IsolationPolicy } from '../domain/isolation.ts';
import type { Firewall, InstanceNetworks, NetworkDefinition, NetworkRuntime } from '../domain/ports.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { FIREWALL_CHAINS, FIREWALL_HOOKS, firewallRules, instanceNetworks, planFirewall, planNetworks } from './isolation-plan.ts';

/**
 * Keeps the node's isolation in place: the instance networks and the firewall
 * rules around them. `ensure()` at start-up (the worker takes no job before it
 * succeeds), `repair()` from every sweep and after the engine comes back. Both
 * read what is there, plan with the pure functions of isolation-plan.ts, and
 * change only what differs, so running them twice, or from two workers at once,
 * changes nothing more.
 */
export class NodeIsolation implements InstanceNetworks {
  private readonly runtime: NetworkRuntime;
  private readonly firewall: Firewall | undefined;
  private readonly policy: IsolationPolicy;
  private readonly logger: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly networks: Record<Egress, NetworkDefinition>;
  private readonly rules: Record<string, string[]>;
  /** Settles once networks and rules were in place; cleared when a create finds a network gone. */
  private ready: Promise<void> | undefined;
  private repairing: Promise<void> | undefined;
  private warnedHooks = false;

  constructor(deps: { runtime: NetworkRuntime; firewall: Firewall | undefined; policy: IsolationPolicy; logger: Logger; metrics?: Metrics }) {
    this.runtime = deps.runtime;
    this.firewall = deps.policy.firewall ? deps.firewall : undefined;
    this.policy = deps.policy;
    this.logger = deps.logger.child({ component: 'node-isolation' });
    this.metrics = deps.metrics;
    this.networks = instanceNetworks(deps.policy);
    this.rules = firewallRules(deps.policy);
  }

  /** The networks and rules, or an error saying why the node cannot isolate instances. */
  async ensure(): Promise<void> {
    if (this.firewall === undefined) {
      this.logger.warn('CTFLEET_FIREWALL is off: instances can reach the node, link-local metadata and private ranges through their gateway. Turn it on for any event with untrusted teams.');
    }
    await this.repairOnce(true);
    this.ready = Promise.resolve();
    this.logger.info(
      { networks: Object.values(this.networks).map((network) => `${network.name} ${network.subnet}`), firewall: this.firewall !== undefined, defaultEgress: this.policy.defaultEgress },
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
      throw error;
    });
    await this.ready;
    return { name: this.networks[egress].name, dns: egress === 'Internet' ? [...this.policy.dnsServers] : [] };
  }

  invalidate(): void {
    this.ready = undefined;
  }

  private async repairOnce(starting: boolean): Promise<void> {
    await this.syncNetworks({ starting });
    if (this.firewall !== undefined) await this.repairFirewall(this.firewall, starting);
  }

  /** Creates missing instance networks and removes ctfleet's other networks no container uses. */
  private async syncNetworks(options: { starting: boolean }): Promise<void> {
    const existing = await this.runtime.listManagedNetworks();
    for (const action of planNetworks(existing, Object.values(this.networks))) {
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
    const observed = await firewall.read(FIREWALL_CHAINS, FIREWALL_HOOKS);
    const plan = planFirewall(observed, this.rules);
    if (plan.missingHooks.length > 0 && !this.warnedHooks) {
      this.warnedHooks = true;
      this.logger.error({ chains: plan.missingHooks }, `The filter table has no ${plan.missingHooks.join(' or ')} chain (does dockerd run with --iptables=false?): forwarded traffic from instances is not filtered`);
    }
    if (plan.replace) {
      await firewall.replaceChains(this.rules);
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
  }
}
