/**
 * How a node keeps instances apart: the networks challenge containers join and
 * the firewall rules around them. Pure values and arithmetic; the worker's
 * isolation plan (src/worker/isolation-plan.ts) turns them into networks and rules.
 */

/** `Internet`: new outbound connections to public addresses; `None`: no new outbound connections at all. */
export type Egress = 'Internet' | 'None';
export const EGRESS_VALUES = ['Internet', 'None'] as const;

/**
 * Where `None` instances live: `ctfleet`, a bridge the worker makes (the
 * default); `engine-default`, the Docker engine's default bridge (docker0),
 * which the worker then firewalls as a `None` network. Docker sets up its
 * embedded DNS resolver in every container of a user-defined network (a re-exec
 * of dockerd and eight iptables runs, ~150 ms of the engine's CPU per start) and
 * in none on the default bridge; `None` instances resolve nothing anyway. The
 * price: every container on the default bridge, ctfleet's or not, is cut off
 * like a `None` instance (docs/security.md).
 */
export type NoneNetwork = 'ctfleet' | 'engine-default';
export const NONE_NETWORK_VALUES = ['ctfleet', 'engine-default'] as const;

/** Docker's name for its default bridge network. */
export const ENGINE_DEFAULT_NETWORK = 'bridge';

/** The sysctl that is 1 when frames between two ports of a bridge pass iptables (module br_netfilter). */
export const BRIDGE_FILTERING_SETTING = '/proc/sys/net/bridge/bridge-nf-call-iptables';

export interface IsolationPolicy {
  /** The IPv4 range instance networks are carved from (CTFLEET_NETWORK_RANGE). */
  range: string;
  /** Destinations instance networks may never reach (CTFLEET_BLOCKED_RANGES). */
  blockedRanges: string[];
  /** The cluster's pod and service ranges, blocked like the others (CTFLEET_CLUSTER_RANGES). */
  clusterRanges: string[];
  /** Resolvers `Internet` instances may query on port 53 even inside a blocked range (CTFLEET_DNS_SERVERS). */
  dnsServers: string[];
  /** Egress of an instance whose spec names none (CTFLEET_DEFAULT_EGRESS). */
  defaultEgress: Egress;
  /** Whether this worker installs and repairs its firewall rules (CTFLEET_FIREWALL). */
  firewall: boolean;
  /** The network `None` instances join (CTFLEET_NONE_NETWORK). */
  noneNetwork: NoneNetwork;
}

/** Private, shared-address and carrier ranges: other nodes, VPC services, the cluster. */
export const DEFAULT_BLOCKED_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'] as const;

/** Link-local, where clouds serve instance metadata (169.254.169.254): always blocked. */
export const LINK_LOCAL_RANGE = '169.254.0.0/16';

export const DEFAULT_ISOLATION: IsolationPolicy = {
  range: '10.213.0.0/16',
  blockedRanges: [...DEFAULT_BLOCKED_RANGES],
  clusterRanges: [],
  dnsServers: [],
  defaultEgress: 'None',
  firewall: true,
  noneNetwork: 'ctfleet',
};

export interface Cidr {
  /** The network address as a 32-bit unsigned number. */
  base: number;
  prefix: number;
}

/** Parses an IPv4 address; undefined if it is not one. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/**
 * Parses `a.b.c.d/n`; a bare address is a /32. Undefined when malformed or when
 * host bits are set (`10.0.0.1/8` is almost always a typo for `10.0.0.0/8`).
 */
export function parseCidr(text: string): Cidr | undefined {
  const [address = '', prefixText, extra] = text.split('/');
  if (extra !== undefined) return undefined;
  const base = parseIpv4(address);
  if (base === undefined) return undefined;
  if (prefixText !== undefined && !/^(0|[1-9]\d?)$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? 32 : Number(prefixText);
  if (prefix > 32) return undefined;
  if (base % 2 ** (32 - prefix) !== 0) return undefined;
  return { base, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIpv4(cidr.base)}/${String(cidr.prefix)}`;
}

/** The two halves of a range. */
export function halves(cidr: Cidr): [Cidr, Cidr] {
  const prefix = cidr.prefix + 1;
  return [
    { base: cidr.base, prefix },
    { base: cidr.base + 2 ** (32 - prefix), prefix },
  ];
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const prefix = Math.min(a.prefix, b.prefix);
  const size = 2 ** (32 - prefix);
  return Math.floor(a.base / size) === Math.floor(b.base / size);
}

/** The egress an instance gets: its spec's, or the deployment's default. */
export function egressOf(spec: { network?: { egress?: Egress } | undefined }, policy: Pick<IsolationPolicy, 'defaultEgress'>): Egress {
  return spec.network?.egress ?? policy.defaultEgress;
}
