import { hostname } from 'node:os';
import { z } from 'zod';
import { DNS_LABEL } from '../domain/names.ts';
import { DANGEROUS_CAPABILITIES, DEFAULT_HARDENING, KNOWN_CAPABILITIES, type HardeningProfile } from '../domain/hardening.ts';
import { DEFAULT_ISOLATION, EGRESS_VALUES, NONE_NETWORK_VALUES, parseCidr, type IsolationPolicy } from '../domain/isolation.ts';
import { parsePortRange, type PortRange } from '../domain/port-range.ts';
import { parseQuantity } from '../domain/quantities.ts';
import type { LogLevel } from '../observability/logger.ts';
import { FIRST_STATUS_GRACE_MS } from '../controller/plan.ts';

/**
 * Where ctfleet finds the three systems it works with. Parsed once at start-up
 * from the environment; every other module receives its slice of it.
 */
export interface ConnectionConfig {
  /** Kubeconfig file to use; absent means in-cluster service-account credentials. */
  kubeconfigPath: string | undefined;
  redis: RedisConfig;
  docker: DockerConfig;
}

export interface RedisConfig {
  url: string;
  /** Prefix of every BullMQ key; the `{…}` hash tag keeps a deployment on one Redis Cluster slot. */
  prefix: string;
}

export type DockerConfig =
  | { kind: 'socket'; socketPath: string }
  | { kind: 'tcp'; protocol: 'http' | 'https'; host: string; port: number };

/** Raised when the environment does not describe a usable configuration; lists every problem. */
export class ConfigError extends Error {
  readonly code = 'ConfigInvalid';
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const redisUrl = z
  .string()
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be a redis:// or rediss:// URL with a host, e.g. redis://127.0.0.1:6379/0');

const dockerHost = z
  .string()
  .transform((value, ctx): DockerConfig => {
    if (value.startsWith('unix://')) {
      const socketPath = value.slice('unix://'.length);
      if (socketPath.startsWith('/')) return { kind: 'socket', socketPath };
    } else if (/^(tcp|http|https):\/\//.test(value)) {
      const url = new URL(value);
      const port = Number(url.port || (url.protocol === 'https:' ? 2376 : 2375));
      if (url.hostname !== '') {
        return { kind: 'tcp', protocol: url.protocol === 'https:' ? 'https' : 'http', host: url.hostname, port };
      }
    }
    ctx.addIssue({ code: 'custom', message: 'must be unix:///absolute/path or tcp://host:port' });
    return z.NEVER;
  });

const prefix = z
  .string()
  .regex(/^[A-Za-z0-9_.{}-]+$/, 'may hold only letters, digits and _ . - { }')
  .refine((value) => /\{[^{}]+\}/.test(value), 'must contain a {hash tag} so every key lands on one Redis Cluster slot');

const environmentSchema = z.object({
  KUBECONFIG: z
    .string()
    .optional()
    .transform((value) => (value === undefined || value === '' ? undefined : value.split(':')[0])),
  REDIS_URL: redisUrl.default('redis://127.0.0.1:6379/0'),
  CTFLEET_REDIS_PREFIX: prefix.default('{ctfleet}'),
  DOCKER_HOST: dockerHost.prefault('unix:///var/run/docker.sock'),
});

export interface RuntimeConfig extends ConnectionConfig {
  logLevel: LogLevel;
  controller: {
    concurrency: number;
    lifetime: { maxLifetimeSeconds: number; onExpiry: 'Keep' | 'Delete' };
    /** How long a fresh instance's first in-flight status (Scheduled) is held back, ms. */
    firstStatusGraceMs: number;
    /** Undefined when leader election is off. */
    leaderElection: { namespace: string; name: string } | undefined;
    nodeLost: { lostAfterMs: number; onNodeLost: 'Reschedule' | 'Keep' };
  };
  /** Retries of transient job failures: exponential backoff with jitter. */
  jobs: { attempts: number; backoffMs: number };
  /** How long a stopping process waits for work in flight before handing it back. */
  shutdownTimeoutMs: number;
  /** Where /healthz, /readyz and /metrics are served: never the platform API's port. */
  http: { host: string; port: number };
  /** The namespaces whose instances this deployment manages; empty: all of them. */
  namespaces: string[];
  /** The platform API; off in `all` unless a token source is set. */
  api: {
    /** Where the API and the dashboard are served, and nothing else. */
    host: string;
    port: number;
    tokensFile: string | undefined;
    tokensSecret: { namespace: string; name: string } | undefined;
    namespace: string;
    maxInstancesPerTeam: number;
    ratePerMinute: number;
    /** Flag checks (POST /v1/flags/verify) per team per minute, a bucket apart from `ratePerMinute`. */
    verifyRatePerMinute: number;
  };
  /** The dashboard, served with the platform API and by its tokens. */
  dashboard: { enabled: boolean; readOnly: boolean };
  /** Flags (docs/flags.md): where the deployment key of per-team flags lives; undefined when unset. */
  flags: { keySecret: { namespace: string; name: string } | undefined };
  worker: {
    node: string;
    advertiseAddress: string;
    bindAddress: string;
    portRange: PortRange;
    concurrency: number;
    readinessTimeoutMs: number;
    sweepIntervalMs: number;
    /** Pool containers one worker makes at once (docs/pools.md). */
    poolRefillConcurrency: number;
    /** Where pool containers' files directories live: the same path for the worker and dockerd. */
    poolFilesDir: string;
    restart: { limit: number; windowMs: number; backoffMs: number };
    hardening: HardeningProfile;
    /** Glob patterns of the images challenges may run; empty: none. */
    allowedImages: string[];
    /** Instance networks and the firewall rules around them. */
    isolation: IsolationPolicy;
  };
}

const positiveInt = (max: number) => z.coerce.number().int().min(1).max(max);
const positiveQuantity = (example: string) =>
  z.string().refine((value) => (parseQuantity(value) ?? 0) > 0, `must be a positive Kubernetes quantity, e.g. ${example}`);
const cpuQuantity = positiveQuantity('500m or 2');
/** Comma-separated capability names, any case, with or without CAP_. */
const capabilityList = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value) => value.split(',').map((item) => item.trim().toUpperCase().replace(/^CAP_/, '')).filter((item) => item !== ''))
    .pipe(z.array(z.enum(KNOWN_CAPABILITIES, 'must list Linux capability names, comma-separated (e.g. CHOWN,SETUID)')));
const memoryQuantity = positiveQuantity('256Mi or 2Gi');

const commaList = (value: string): string[] => value.split(',').map((item) => item.trim()).filter((item) => item !== '');
const cidrList = (example: string, fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform(commaList)
    .pipe(z.array(z.string().refine((item) => parseCidr(item) !== undefined, `must list IPv4 ranges with no host bits set, comma-separated, e.g. ${example}`)));

const namespacesSchema = z
  .string()
  .default('')
  .transform((value) => value.split(',').map((item) => item.trim()).filter((item) => item !== ''))
  .pipe(z.array(z.string().regex(DNS_LABEL, 'must list namespace names (DNS labels), comma-separated').max(63)));

const runtimeSchema = z.object({
  CTFLEET_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  CTFLEET_CONTROLLER_CONCURRENCY: positiveInt(256).default(16),
  CTFLEET_MAX_LIFETIME_SECONDS: positiveInt(31_536_000).default(604_800),
  CTFLEET_FIRST_STATUS_GRACE_SECONDS: z.coerce.number().int().min(0).max(300).default(FIRST_STATUS_GRACE_MS / 1000),
  CTFLEET_ON_EXPIRY: z.enum(['Keep', 'Delete']).default('Keep'),
  CTFLEET_LEADER_ELECTION: z.enum(['true', 'false'], 'must be true or false').default('true'),
  CTFLEET_LEASE_NAMESPACE: z.string().regex(DNS_LABEL, 'must be a namespace name (a DNS label)').max(63).default('default'),
  CTFLEET_LEASE_NAME: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS subdomain').max(253).optional(),
  CTFLEET_NODE_NAME: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS subdomain (lower-case letters, digits, - and .), as Kubernetes node names are')
    .max(253)
    .default(hostname().toLowerCase()),
  CTFLEET_ADVERTISE_ADDRESS: z.string().min(1).default('127.0.0.1'),
  CTFLEET_BIND_ADDRESS: z.union([z.ipv4(), z.ipv6()], 'must be an IP address to publish ports on, e.g. 0.0.0.0 or 127.0.0.1').default('0.0.0.0'),
  CTFLEET_PORT_RANGE: z
    .string()
    .default('30000-32767')
    .transform((value, ctx) => {
      try {
        return parsePortRange(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    }),
  CTFLEET_WORKER_CONCURRENCY: positiveInt(256).default(8),
  CTFLEET_READINESS_TIMEOUT_SECONDS: positiveInt(600).default(30),
  CTFLEET_JOB_ATTEMPTS: positiveInt(50).default(5),
  CTFLEET_JOB_BACKOFF_MS: positiveInt(600_000).default(1_000),
  CTFLEET_NODE_LOST_SECONDS: positiveInt(86_400).default(30),
  CTFLEET_ON_NODE_LOST: z.enum(['Reschedule', 'Keep']).default('Reschedule'),
  CTFLEET_SWEEP_INTERVAL_SECONDS: positiveInt(3_600).default(30),
  CTFLEET_POOL_REFILL_CONCURRENCY: positiveInt(64).default(2),
  CTFLEET_POOL_FILES_DIR: z.string().regex(/^\/[^\0]*$/, 'must be an absolute path').default('/var/lib/ctfleet/pool-files'),
  CTFLEET_RESTART_LIMIT: z.coerce.number().int().min(0).max(100).default(5),
  CTFLEET_RESTART_WINDOW_SECONDS: positiveInt(86_400).default(600),
  CTFLEET_RESTART_BACKOFF_MS: positiveInt(600_000).default(1_000),
  CTFLEET_SHUTDOWN_TIMEOUT_SECONDS: positiveInt(3_600).default(20),
  CTFLEET_HTTP_HOST: z.string().min(1).default('0.0.0.0'),
  CTFLEET_API_TOKENS_FILE: z.string().min(1).optional(),
  CTFLEET_API_TOKENS_SECRET: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be namespace/name of a Secret with a key "tokens"').optional(),
  CTFLEET_API_NAMESPACE: z.string().regex(DNS_LABEL, 'must be a namespace name (a DNS label)').max(63).default('default'),
  CTFLEET_API_MAX_INSTANCES_PER_TEAM: positiveInt(1_000).default(3),
  CTFLEET_API_RATE_PER_MINUTE: positiveInt(100_000).default(60),
  CTFLEET_API_VERIFY_RATE_PER_MINUTE: positiveInt(10_000).default(10),
  CTFLEET_API_HOST: z.string().min(1).optional(),
  CTFLEET_API_PORT: z.coerce.number().int().min(0, 'must be a port number (0 picks a free one)').max(65535, 'must be a port number (0 picks a free one)').default(8081),
  CTFLEET_FLAG_KEY_SECRET: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'must be namespace/name of a Secret with a key "key" of at least 32 bytes, e.g. ctfleet-system/ctfleet-flag-key')
    .optional(),
  CTFLEET_DASHBOARD: z.enum(['true', 'false'], 'must be true or false').default('true'),
  CTFLEET_DASHBOARD_READ_ONLY: z.enum(['true', 'false'], 'must be true or false').default('false'),
  CTFLEET_NAMESPACES: namespacesSchema,
  CTFLEET_HTTP_PORT: z.coerce.number().int().min(0, 'must be a port number (0 picks a free one)').max(65535, 'must be a port number (0 picks a free one)').default(8080),
  CTFLEET_CAPABILITIES: capabilityList(DEFAULT_HARDENING.capabilities.join(',')),
  CTFLEET_ALLOWED_EXTRA_CAPABILITIES: capabilityList(DEFAULT_HARDENING.allowedExtraCapabilities.join(',')),
  CTFLEET_UNSAFE_ALLOW_DANGEROUS_CAPABILITIES: z.enum(['true', 'false'], 'must be true or false').default('false'),
  CTFLEET_ALLOWED_RUNTIMES: z
    .string()
    .default(DEFAULT_HARDENING.allowedRuntimes.join(','))
    .transform((value) => value.split(',').map((item) => item.trim()).filter((item) => item !== ''))
    .pipe(z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must list Docker runtime names, comma-separated, e.g. runsc').max(63))),
  CTFLEET_READ_ONLY_ROOT_FILESYSTEM: z.enum(['true', 'false'], 'must be true or false').default(DEFAULT_HARDENING.readOnlyRootFilesystem ? 'true' : 'false'),
  CTFLEET_MAX_TMPFS_SIZE: memoryQuantity.default(DEFAULT_HARDENING.maxTmpfsSize),
  CTFLEET_DEFAULT_CPU: cpuQuantity.default(DEFAULT_HARDENING.defaults.cpu),
  CTFLEET_DEFAULT_MEMORY: memoryQuantity.default(DEFAULT_HARDENING.defaults.memory),
  CTFLEET_DEFAULT_PIDS: z.coerce.number().int().min(8).max(65536).default(DEFAULT_HARDENING.defaults.pids),
  CTFLEET_MAX_CPU: cpuQuantity.default(DEFAULT_HARDENING.maxima.cpu),
  CTFLEET_MAX_MEMORY: memoryQuantity.default(DEFAULT_HARDENING.maxima.memory),
  CTFLEET_MAX_PIDS: z.coerce.number().int().min(8).max(65536).default(DEFAULT_HARDENING.maxima.pids),
  CTFLEET_NOFILE: z.coerce.number().int().min(64).max(1_048_576).default(DEFAULT_HARDENING.nofile),
  CTFLEET_LOG_MAX_SIZE: z.string().regex(/^[1-9]\d*[kmg]$/, 'must be a size such as 512k, 1m or 1g (Docker\'s max-size)').default(DEFAULT_HARDENING.log.maxSize),
  CTFLEET_LOG_MAX_FILES: positiveInt(100).default(DEFAULT_HARDENING.log.maxFiles),
  CTFLEET_ALLOWED_IMAGES: z
    .string()
    .default('')
    .transform((value) => value.split(',').map((item) => item.trim()).filter((item) => item !== ''))
    .pipe(z.array(z.string().regex(/^[^\s,]+$/, 'must list image patterns, comma-separated, e.g. registry.example/ctf/*'))),
  CTFLEET_NETWORK_RANGE: z
    .string()
    .default(DEFAULT_ISOLATION.range)
    .refine((value) => {
      const cidr = parseCidr(value);
      return cidr !== undefined && cidr.prefix >= 8 && cidr.prefix <= 24;
    }, 'must be an IPv4 range from /8 to /24 with no host bits set, e.g. 10.213.0.0/16 (split in two: Internet and None egress)'),
  CTFLEET_BLOCKED_RANGES: cidrList('10.0.0.0/8,172.16.0.0/12', DEFAULT_ISOLATION.blockedRanges.join(',')),
  CTFLEET_CLUSTER_RANGES: cidrList('10.244.0.0/16,10.96.0.0/12', ''),
  CTFLEET_DNS_SERVERS: z
    .string()
    .default('')
    .transform(commaList)
    .pipe(z.array(z.ipv4('must list IPv4 addresses of resolvers, comma-separated, e.g. 10.0.0.2'))),
  CTFLEET_DEFAULT_EGRESS: z.enum(EGRESS_VALUES, 'must be Internet or None').default(DEFAULT_ISOLATION.defaultEgress),
  CTFLEET_FIREWALL: z.enum(['on', 'off'], 'must be on or off (off leaves instances able to reach the node and private ranges)').default('on'),
  CTFLEET_NONE_NETWORK: z
    .enum(NONE_NETWORK_VALUES, 'must be ctfleet (a bridge the worker makes) or engine-default (the Docker engine\'s default bridge, firewalled as a None network: nothing on it reaches anything new)')
    .default(DEFAULT_ISOLATION.noneNetwork),
}).superRefine((value, ctx) => {
  // The API and /healthz, /readyz, /metrics listen apart: the public port serves only the API.
  const servesApi = value.CTFLEET_API_TOKENS_FILE !== undefined || value.CTFLEET_API_TOKENS_SECRET !== undefined;
  if (servesApi && value.CTFLEET_API_PORT !== 0 && value.CTFLEET_API_PORT === value.CTFLEET_HTTP_PORT) {
    ctx.addIssue({ code: 'custom', path: ['CTFLEET_API_PORT'], message: `must differ from CTFLEET_HTTP_PORT (${value.CTFLEET_HTTP_PORT}), where /healthz, /readyz and /metrics are served` });
  }
  // On the engine's default bridge only the worker's rules keep None instances in.
  if (value.CTFLEET_NONE_NETWORK === 'engine-default' && value.CTFLEET_FIREWALL === 'off') {
    ctx.addIssue({ code: 'custom', path: ['CTFLEET_NONE_NETWORK'], message: 'engine-default needs CTFLEET_FIREWALL=on: without the worker\'s rules, None instances on the default bridge reach each other, the node and the Internet' });
  }
  // A default above its maximum would fail every instance that names no resources.
  const pairs: [string, string, string | number, string | number][] = [
    ['CTFLEET_DEFAULT_CPU', 'CTFLEET_MAX_CPU', value.CTFLEET_DEFAULT_CPU, value.CTFLEET_MAX_CPU],
    ['CTFLEET_DEFAULT_MEMORY', 'CTFLEET_MAX_MEMORY', value.CTFLEET_DEFAULT_MEMORY, value.CTFLEET_MAX_MEMORY],
    ['CTFLEET_DEFAULT_PIDS', 'CTFLEET_MAX_PIDS', value.CTFLEET_DEFAULT_PIDS, value.CTFLEET_MAX_PIDS],
  ];
  const amount = (quantity: string | number): number => (typeof quantity === 'number' ? quantity : (parseQuantity(quantity) ?? 0));
  for (const [name, max, low, high] of pairs) {
    if (amount(low) > amount(high)) ctx.addIssue({ code: 'custom', path: [name], message: `must not exceed ${max} (${String(high)}); got ${String(low)}` });
  }
}).superRefine((value, ctx) => {
  // Capabilities with which an instance breaks out of its isolation (docs/security.md):
  // on the list a spec may add from, or kept by every container (every team's).
  const lists = [
    ['CTFLEET_ALLOWED_EXTRA_CAPABILITIES', value.CTFLEET_ALLOWED_EXTRA_CAPABILITIES, 'a team'],
    ['CTFLEET_CAPABILITIES', value.CTFLEET_CAPABILITIES, 'every team'],
  ] as const;
  for (const [name, capabilities, who] of lists) {
    const dangerous = capabilities.filter((capability) => capability in DANGEROUS_CAPABILITIES);
    if (dangerous.length === 0 || value.CTFLEET_UNSAFE_ALLOW_DANGEROUS_CAPABILITIES === 'true') continue;
    ctx.addIssue({
      code: 'custom',
      path: [name],
      message: `${[...new Set(dangerous)].join(', ')} would let ${who} break out of its instance's isolation (docs/security.md); refused unless CTFLEET_UNSAFE_ALLOW_DANGEROUS_CAPABILITIES=true`,
    });
  }
}, {
  // Reported with every other problem, not only once they are fixed.
  when: (payload) => {
    const value = payload.value as { CTFLEET_ALLOWED_EXTRA_CAPABILITIES?: unknown; CTFLEET_CAPABILITIES?: unknown };
    return Array.isArray(value.CTFLEET_ALLOWED_EXTRA_CAPABILITIES) && Array.isArray(value.CTFLEET_CAPABILITIES);
  },
});

/** Reads everything a ctfleet process needs; throws {@link ConfigError} listing every problem. */
export function loadRuntimeConfig(env: Record<string, string | undefined>): RuntimeConfig {
  const problems: string[] = [];
  let connection: ConnectionConfig | undefined;
  try {
    connection = loadConnectionConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems);
  }
  const parsed = runtimeSchema.safeParse(env);
  if (!parsed.success) problems.push(...parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  if (problems.length > 0 || connection === undefined || !parsed.success) throw new ConfigError(problems);
  const value = parsed.data;
  return {
    ...connection,
    logLevel: value.CTFLEET_LOG_LEVEL,
    controller: {
      concurrency: value.CTFLEET_CONTROLLER_CONCURRENCY,
      lifetime: { maxLifetimeSeconds: value.CTFLEET_MAX_LIFETIME_SECONDS, onExpiry: value.CTFLEET_ON_EXPIRY },
      firstStatusGraceMs: value.CTFLEET_FIRST_STATUS_GRACE_SECONDS * 1000,
      leaderElection:
        value.CTFLEET_LEADER_ELECTION === 'false'
          ? undefined
          : { namespace: value.CTFLEET_LEASE_NAMESPACE, name: value.CTFLEET_LEASE_NAME ?? leaseNameFor(connection.redis.prefix) },
      nodeLost: { lostAfterMs: value.CTFLEET_NODE_LOST_SECONDS * 1000, onNodeLost: value.CTFLEET_ON_NODE_LOST },
    },
    jobs: { attempts: value.CTFLEET_JOB_ATTEMPTS, backoffMs: value.CTFLEET_JOB_BACKOFF_MS },
    shutdownTimeoutMs: value.CTFLEET_SHUTDOWN_TIMEOUT_SECONDS * 1000,
    http: { host: value.CTFLEET_HTTP_HOST, port: value.CTFLEET_HTTP_PORT },
    namespaces: value.CTFLEET_NAMESPACES,
    api: {
      host: value.CTFLEET_API_HOST ?? value.CTFLEET_HTTP_HOST,
      port: value.CTFLEET_API_PORT,
      tokensFile: value.CTFLEET_API_TOKENS_FILE,
      tokensSecret: value.CTFLEET_API_TOKENS_SECRET === undefined
        ? undefined
        : { namespace: value.CTFLEET_API_TOKENS_SECRET.split('/')[0] ?? '', name: value.CTFLEET_API_TOKENS_SECRET.split('/')[1] ?? '' },
      namespace: value.CTFLEET_API_NAMESPACE,
      maxInstancesPerTeam: value.CTFLEET_API_MAX_INSTANCES_PER_TEAM,
      ratePerMinute: value.CTFLEET_API_RATE_PER_MINUTE,
      verifyRatePerMinute: value.CTFLEET_API_VERIFY_RATE_PER_MINUTE,
    },
    dashboard: { enabled: value.CTFLEET_DASHBOARD === 'true', readOnly: value.CTFLEET_DASHBOARD_READ_ONLY === 'true' },
    flags: { keySecret: secretRefOf(value.CTFLEET_FLAG_KEY_SECRET) },
    worker: {
      node: value.CTFLEET_NODE_NAME,
      advertiseAddress: value.CTFLEET_ADVERTISE_ADDRESS,
      bindAddress: value.CTFLEET_BIND_ADDRESS,
      portRange: value.CTFLEET_PORT_RANGE,
      concurrency: value.CTFLEET_WORKER_CONCURRENCY,
      readinessTimeoutMs: value.CTFLEET_READINESS_TIMEOUT_SECONDS * 1000,
      sweepIntervalMs: value.CTFLEET_SWEEP_INTERVAL_SECONDS * 1000,
      poolRefillConcurrency: value.CTFLEET_POOL_REFILL_CONCURRENCY,
      poolFilesDir: value.CTFLEET_POOL_FILES_DIR,
      restart: { limit: value.CTFLEET_RESTART_LIMIT, windowMs: value.CTFLEET_RESTART_WINDOW_SECONDS * 1000, backoffMs: value.CTFLEET_RESTART_BACKOFF_MS },
      hardening: {
        capabilities: [...new Set(value.CTFLEET_CAPABILITIES)],
        defaults: { cpu: value.CTFLEET_DEFAULT_CPU, memory: value.CTFLEET_DEFAULT_MEMORY, pids: value.CTFLEET_DEFAULT_PIDS },
        maxima: { cpu: value.CTFLEET_MAX_CPU, memory: value.CTFLEET_MAX_MEMORY, pids: value.CTFLEET_MAX_PIDS },
        nofile: value.CTFLEET_NOFILE,
        log: { maxSize: value.CTFLEET_LOG_MAX_SIZE, maxFiles: value.CTFLEET_LOG_MAX_FILES },
        allowedExtraCapabilities: [...new Set(value.CTFLEET_ALLOWED_EXTRA_CAPABILITIES)],
        allowedRuntimes: [...new Set(value.CTFLEET_ALLOWED_RUNTIMES)],
        readOnlyRootFilesystem: value.CTFLEET_READ_ONLY_ROOT_FILESYSTEM === 'true',
        maxTmpfsSize: value.CTFLEET_MAX_TMPFS_SIZE,
      },
      allowedImages: value.CTFLEET_ALLOWED_IMAGES,
      isolation: {
        range: value.CTFLEET_NETWORK_RANGE,
        blockedRanges: value.CTFLEET_BLOCKED_RANGES,
        clusterRanges: value.CTFLEET_CLUSTER_RANGES,
        dnsServers: value.CTFLEET_DNS_SERVERS,
        defaultEgress: value.CTFLEET_DEFAULT_EGRESS,
        firewall: value.CTFLEET_FIREWALL === 'on',
        noneNetwork: value.CTFLEET_NONE_NETWORK,
      },
    },
  };
}

/** `namespace/name`, already checked by the schema, as its two parts. */
function secretRefOf(value: string | undefined): { namespace: string; name: string } | undefined {
  if (value === undefined) return undefined;
  const [namespace = '', name = ''] = value.split('/');
  return { namespace, name };
}

/**
 * One deployment, one Redis prefix, one lease: `{ctfleet}` → `ctfleet-controller`,
 * so two deployments sharing a cluster never elect each other's leader.
 */
export function leaseNameFor(prefix: string): string {
  const base = prefix.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  return `${base === '' ? 'ctfleet' : base.slice(0, 200)}-controller`;
}

/** CTFLEET_NAMESPACES alone (for commands that need only it): the namespaces a deployment manages, empty for all. */
export function loadNamespaces(env: Record<string, string | undefined>): string[] {
  const parsed = z.object({ CTFLEET_NAMESPACES: namespacesSchema }).safeParse(env);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  return parsed.data.CTFLEET_NAMESPACES;
}

/**
 * Reads the connection settings from an environment map. Throws {@link ConfigError}
 * naming every invalid variable and its rule at once.
 */
export function loadConnectionConfig(env: Record<string, string | undefined>): ConnectionConfig {
  const parsed = environmentSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  const value = parsed.data;
  return {
    kubeconfigPath: value.KUBECONFIG,
    redis: { url: value.REDIS_URL, prefix: value.CTFLEET_REDIS_PREFIX },
    docker: value.DOCKER_HOST,
  };
}
