import { z } from 'zod';

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
