import { createHash } from 'node:crypto';
import { formatCidr, halves, LINK_LOCAL_RANGE, parseCidr, type Egress, type IsolationPolicy } from '../domain/isolation.ts';
import { LABELS, MANAGED_BY } from '../domain/names.ts';
import type { FirewallHook, FirewallState, NetworkDefinition, NetworkInfo } from '../domain/ports.ts';

/**
 * The node's isolation as data: which networks instances join and which
 * firewall rules surround them, and what to change to get there from what the
 * engine and the filter table hold. Pure: no I/O, no clock.
 *
 * Design (measured in docs/security.md): one bridge per egress class, shared by
 * the node's instances, with inter-container traffic off, so a start costs no
 * network create. Rules match bridges by name (`ctfl-i-*`, `ctfl-n-*`), not by
 * address, so they hold for any range and cannot be dodged by a spoofed source.
 */

/** Bridges of instance networks start with this (`iptables -i ctfl-+`). */
export const BRIDGE_PREFIX = 'ctfl-';
const BRIDGE_PREFIX_OF: Record<Egress, string> = { Internet: 'ctfl-i-', None: 'ctfl-n-' };
const NETWORK_PREFIX_OF: Record<Egress, string> = { Internet: 'ctfleet-internet-', None: 'ctfleet-none-' };

/** ctfleet's chains: forwarded traffic from instances, and traffic from instances to the node itself. */
export const FORWARD_CHAIN = 'CTFLEET-FORWARD';
export const INPUT_CHAIN = 'CTFLEET-INPUT';
export const FIREWALL_CHAINS = [FORWARD_CHAIN, INPUT_CHAIN] as const;
/** DOCKER-USER is Docker's place for users' forwarding rules; INPUT sees traffic to the node's own addresses. */
export const FIREWALL_HOOKS: readonly FirewallHook[] = [
  { from: 'DOCKER-USER', to: FORWARD_CHAIN },
  { from: 'INPUT', to: INPUT_CHAIN },
];

export const hookKey = (hook: FirewallHook): string => `${hook.from}>${hook.to}`;

/**
 * The chain that closes the host ports of this node's idle pool containers
 * (docs/pools.md): one per node, since several workers may share a host's
 * filter table, each guarding its own ports. Jumped to from DOCKER-USER.
 */
export function poolGuardChain(node: string): string {
  return `CTFLEET-POOL-${createHash('sha256').update(node).digest('hex').slice(0, 8)}`;
}

/**
 * Its rules: a connection forwarded to an instance bridge whose original
 * destination port (before Docker's DNAT) is a guarded host port is dropped,
 * TCP and UDP alike. Connections the node itself makes (readiness probes, the
 * userland proxy on loopback) are not forwarded and pass. Sorted, in the form
 * `iptables-save` prints them.
 */
export function poolGuardRules(ports: ReadonlySet<number>, engineBridge?: string): string[] {
  const bridges = engineBridge === undefined ? [`${BRIDGE_PREFIX}+`] : [`${BRIDGE_PREFIX}+`, engineBridge];
  return [...ports]
    .sort((a, b) => a - b)
    .flatMap((port) => bridges.map((bridge) => `-o ${bridge} -m conntrack --ctstate DNAT --ctorigdstport ${port} -j DROP`));
}

/** The networks instances of each egress join, carved from the policy's range: Internet the lower half, None the upper. */
export function instanceNetworks(policy: Pick<IsolationPolicy, 'range'>): Record<Egress, NetworkDefinition> {
  const range = parseCidr(policy.range);
  if (range === undefined) throw new Error(`not a CIDR range: ${policy.range}`);
  const [lower, upper] = halves(range);
  const network = (egress: Egress, subnet: string): NetworkDefinition => {
    const settings = { subnet, egress, icc: false, masquerade: egress === 'Internet', version: 1 };
    const hash = createHash('sha256').update(JSON.stringify(settings)).digest('hex').slice(0, 8);
    return {
      name: `${NETWORK_PREFIX_OF[egress]}${hash}`,
      bridge: `${BRIDGE_PREFIX_OF[egress]}${hash}`,
      subnet,
      masquerade: settings.masquerade,
      labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.egress]: egress, [LABELS.networkConfig]: hash },
    };
  };
  return { Internet: network('Internet', formatCidr(lower)), None: network('None', formatCidr(upper)) };
}

export type NetworkAction = { type: 'create'; network: NetworkDefinition } | { type: 'remove'; network: NetworkInfo };

/**
 * Creates the desired networks that are missing and removes ctfleet's other
 * networks once no container uses them (left by an older range or version).
 * A network in use is left to drain: its containers keep working and are covered
 * by the same rules.
 */
export function planNetworks(existing: readonly NetworkInfo[], desired: readonly NetworkDefinition[]): NetworkAction[] {
  const names = new Set(existing.map((network) => network.name));
  const wanted = new Set(desired.map((network) => network.name));
  return [
    ...desired.filter((network) => !names.has(network.name)).map((network) => ({ type: 'create' as const, network })),
    ...existing.filter((network) => !wanted.has(network.name) && network.containers === 0).map((network) => ({ type: 'remove' as const, network })),
  ];
}

/**
 * The rules of ctfleet's chains, in the form `iptables-save` prints them (so a
 * read-back compares equal). Order matters: replies first, then DNS exceptions,
 * then every drop.
 *
 * From any instance bridge: replies of connections made to it pass (published
 * ports keep working); nothing new reaches another instance bridge, the node
 * (INPUT), link-local (metadata), the instance range, the blocked and cluster
 * ranges, or another Docker network. From a `None` bridge nothing new leaves at all.
 *
 * `engineBridge`: the engine's default bridge (docker0) when `None` instances
 * live there (CTFLEET_NONE_NETWORK=engine-default): it is a `None` bridge too, so
 * nothing new leaves it, to its own containers (bridged traffic passes FORWARD
 * through br_netfilter), the node, or anywhere else.
 */
export function firewallRules(policy: Pick<IsolationPolicy, 'range' | 'blockedRanges' | 'clusterRanges' | 'dnsServers'>, engineBridge?: string): Record<string, string[]> {
  const any = `${BRIDGE_PREFIX}+`;
  const internet = `${BRIDGE_PREFIX_OF.Internet}+`;
  const none = `${BRIDGE_PREFIX_OF.None}+`;
  const sources = engineBridge === undefined ? [any] : [any, engineBridge];
  const replies = sources.map((bridge) => `-i ${bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`);
  const dns = policy.dnsServers.flatMap((server) =>
    (['udp', 'tcp'] as const).map((protocol) => `-d ${cidrText(server)} -i ${internet} -p ${protocol} -m ${protocol} --dport 53 -j RETURN`),
  );
  const destinations = unique([LINK_LOCAL_RANGE, policy.range, ...policy.blockedRanges, ...policy.clusterRanges].map(cidrText));
  const cutOff = sources.slice(1).map((bridge) => `-i ${bridge} -j DROP`);
  return {
    [FORWARD_CHAIN]: [
      ...replies,
      ...dns,
      `-i ${none} -j DROP`,
      ...cutOff,
      `-i ${any} -o ${any} -j DROP`,
      ...destinations.map((range) => `-d ${range} -i ${any} -j DROP`),
      ...unique(['docker0', engineBridge ?? 'docker0']).map((bridge) => `-i ${any} -o ${bridge} -j DROP`),
      `-i ${any} -o br-+ -j DROP`,
    ],
    [INPUT_CHAIN]: [...replies, ...dns, `-i ${any} -j DROP`, ...cutOff],
  };
}

/** `10.0.0.1` → `10.0.0.1/32`, as iptables-save prints a single address. */
function cidrText(text: string): string {
  const cidr = parseCidr(text);
  return cidr === undefined ? text : formatCidr(cidr);
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

export interface FirewallPlan {
  /** Rewrite ctfleet's chains (missing, changed, or flushed by someone). */
  replace: boolean;
  insertJumps: FirewallHook[];
  /** One entry per surplus jump (two workers inserting at once leave two). */
  deleteJumps: FirewallHook[];
  /** Hook chains missing from the table: Docker's, when dockerd runs with --iptables=false. */
  missingHooks: string[];
}

/** What to change so the table holds exactly `desired` and one jump per hook (default: ctfleet's two). */
export function planFirewall(observed: FirewallState, desired: Record<string, readonly string[]>, hooks: readonly FirewallHook[] = FIREWALL_HOOKS): FirewallPlan {
  const replace = Object.entries(desired).some(([chain, rules]) => !sameRules(observed.chains[chain], rules));
  const missingHooks = unique(hooks.map((hook) => hook.from).filter((chain) => !observed.existing.includes(chain)));
  const usable = hooks.filter((hook) => !missingHooks.includes(hook.from));
  return {
    replace,
    insertJumps: usable.filter((hook) => (observed.jumps[hookKey(hook)] ?? 0) === 0),
    deleteJumps: usable.flatMap((hook) => Array.from({ length: Math.max(0, (observed.jumps[hookKey(hook)] ?? 0) - 1) }, () => hook)),
    missingHooks,
  };
}

function sameRules(actual: readonly string[] | undefined, wanted: readonly string[]): boolean {
  return actual !== undefined && actual.length === wanted.length && actual.every((rule, i) => rule === wanted[i]);
}
