import type { Endpoint, InstanceSpec } from '../domain/challenge-instance.ts';
import { permanent } from '../domain/errors.ts';
import type { JobTarget } from '../domain/jobs.ts';
import { containerName, LABELS } from '../domain/names.ts';
import type { ContainerDefinition, PortBinding } from '../domain/ports.ts';
import type { HardeningProfile } from '../domain/hardening.ts';
import type { ContainerFile } from '../domain/ports.ts';
import type { Egress } from '../domain/isolation.ts';
import { formatBytes, toBytes, toNanoCpus } from '../domain/quantities.ts';
import { POOL_FILES_LABEL, POOL_LABEL, poolContainerName } from '../domain/pool.ts';

/**
 * What a container of an instance looks like: its name, labels, limits and
 * spec hash, and the endpoints its host ports make. Pure: the same instance
 * always gives the same shape.
 */

export function endpointUrl(name: string, protocol: string, host: string, port: number): string {
  const scheme = protocol === 'UDP' ? 'udp' : name.startsWith('https') ? 'https' : name.startsWith('http') ? 'http' : 'tcp';
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The endpoints teams reach: the spec's ports, in order, on the container's host ports. */
export function endpointsOf(hostPorts: readonly number[], spec: InstanceSpec, advertiseAddress: string): Endpoint[] {
  return spec.ports.map((port, i) => {
    const hostPort = hostPorts[i] ?? 0;
    return { name: port.name, host: advertiseAddress, port: hostPort, protocol: port.protocol, url: endpointUrl(port.name, port.protocol, advertiseAddress, hostPort) };
  });
}

/**
 * Docker's limits for the spec's resources: the deployment's defaults where the
 * spec names none, and a spec above the deployment's maxima fails InvalidSpec,
 * naming the field and the maximum.
 */
export function limitsOf(spec: InstanceSpec, profile: HardeningProfile): { nanoCpus: number; memoryBytes: number; pidsLimit: number } {
  const { cpu = profile.defaults.cpu, memory = profile.defaults.memory, pids = profile.defaults.pids } = spec.resources ?? {};
  const nanoCpus = toNanoCpus(cpu);
  if (nanoCpus === undefined) throw permanent('InvalidSpec', `spec.resources.cpu: "${cpu}" is not a positive quantity`);
  if (nanoCpus > (toNanoCpus(profile.maxima.cpu) ?? Number.POSITIVE_INFINITY)) throw permanent('InvalidSpec', `spec.resources.cpu: ${cpu} is above this deployment's maximum of ${profile.maxima.cpu} (CTFLEET_MAX_CPU)`);
  const bytes = toBytes(memory);
  if (bytes === undefined) throw permanent('InvalidSpec', `spec.resources.memory: "${memory}" is not a positive quantity`);
  if (bytes > (toBytes(profile.maxima.memory) ?? Number.POSITIVE_INFINITY)) throw permanent('InvalidSpec', `spec.resources.memory: ${memory} is above this deployment's maximum of ${profile.maxima.memory} (CTFLEET_MAX_MEMORY)`);
  if (pids > profile.maxima.pids) throw permanent('InvalidSpec', `spec.resources.pids: ${pids} is above this deployment's maximum of ${profile.maxima.pids} (CTFLEET_MAX_PIDS)`);
  return { nanoCpus, memoryBytes: bytes, pidsLimit: pids };
}

/** Absolute, of plain segments: no empty, `.` or `..` segment, nothing Docker's mount options could misread. */
const TMPFS_PATH = /^(\/[A-Za-z0-9_.-]+)+$/;
const DOT_SEGMENT = /(^|\/)\.\.?(\/|$)/;
/** The kernel's own filesystems: a tmpfs there would hide what the runtime masks and mounts read-only. */
const KERNEL_PATH = /^\/(proc|sys|dev)(\/|$)/;

/** What an instance's container gets of the spec's `security`, within the deployment's allow-lists. */
export interface SecurityShape {
  /** The deployment's kept set plus the spec's allowed extras. */
  capabilities: string[];
  readOnlyRootFilesystem: boolean;
  tmpfs: { path: string; sizeBytes: number }[];
  runtime?: string;
}

/**
 * The spec's `security` as the deployment allows it: extra capabilities and a
 * runtime only from the deployment's allow-lists, a read-only root when the
 * spec or the deployment asks, tmpfs mounts at valid paths and within the
 * deployment's maximum. Anything else fails InvalidSpec naming each field and
 * what is allowed, every problem at once.
 *
 * Guarantees: nothing here can turn off seccomp, AppArmor or no-new-privileges,
 * or make a container privileged; a spec cannot turn a forced read-only root off.
 */
export function securityOf(spec: InstanceSpec, profile: HardeningProfile): SecurityShape {
  const security = spec.security ?? {};
  const problems: string[] = [];

  const kept = new Set(profile.capabilities);
  const add = security.capabilities?.add ?? [];
  const refused = [...new Set(add)].filter((capability) => !kept.has(capability) && !profile.allowedExtraCapabilities.includes(capability));
  if (refused.length > 0) {
    const list = profile.allowedExtraCapabilities.length === 0 ? 'CTFLEET_ALLOWED_EXTRA_CAPABILITIES is empty: none' : `CTFLEET_ALLOWED_EXTRA_CAPABILITIES: ${profile.allowedExtraCapabilities.join(', ')}`;
    problems.push(`spec.security.capabilities.add: ${refused.join(', ')} ${refused.length === 1 ? 'is' : 'are'} not on this deployment's list of capabilities a spec may add (${list})`);
  }

  const runtime = security.runtime;
  if (runtime !== undefined && !profile.allowedRuntimes.includes(runtime)) {
    const list = profile.allowedRuntimes.length === 0 ? 'CTFLEET_ALLOWED_RUNTIMES is empty: only the engine\'s default runtime' : `CTFLEET_ALLOWED_RUNTIMES: ${profile.allowedRuntimes.join(', ')}`;
    problems.push(`spec.security.runtime: ${runtime} is not on this deployment's list of runtimes (${list})`);
  }

  const tmpfs: { path: string; sizeBytes: number }[] = [];
  const seen = new Set<string>();
  (security.tmpfs ?? []).forEach((mount, i) => {
    const field = `spec.security.tmpfs[${i}]`;
    if (mount.path === '/') problems.push(`${field}.path: the root cannot be a tmpfs; set readOnlyRootFilesystem and mount tmpfs below it`);
    else if (!TMPFS_PATH.test(mount.path) || DOT_SEGMENT.test(mount.path)) problems.push(`${field}.path: "${mount.path}" is not an absolute path of plain segments (letters, digits, '.', '_', '-'; no '.' or '..' segment, no trailing '/')`);
    else if (KERNEL_PATH.test(mount.path)) problems.push(`${field}.path: ${mount.path} is under /proc, /sys or /dev, which the runtime manages`);
    else if (seen.has(mount.path)) problems.push(`${field}.path: ${mount.path} is mounted twice`);
    seen.add(mount.path);
    const bytes = toBytes(mount.size);
    if (bytes === undefined) problems.push(`${field}.size: "${mount.size}" is not a positive quantity`);
    else tmpfs.push({ path: mount.path, sizeBytes: bytes });
  });
  const total = tmpfs.reduce((sum, mount) => sum + mount.sizeBytes, 0);
  if (total > (toBytes(profile.maxTmpfsSize) ?? Number.POSITIVE_INFINITY)) {
    problems.push(`spec.security.tmpfs: ${formatBytes(total)} in all is above this deployment's maximum of ${profile.maxTmpfsSize} (CTFLEET_MAX_TMPFS_SIZE)`);
  }

  if (problems.length > 0) throw permanent('InvalidSpec', problems.join('; '));
  return {
    capabilities: [...new Set([...profile.capabilities, ...add])],
    readOnlyRootFilesystem: profile.readOnlyRootFilesystem || security.readOnlyRootFilesystem === true,
    tmpfs,
    ...(runtime === undefined ? {} : { runtime }),
  };
}

/** The full definition of an instance's container on `hostPorts`. */
export function containerDefinition(
  target: JobTarget,
  spec: InstanceSpec,
  placement: { node: string; bindAddress: string; hostPorts: readonly number[]; network: { name: string; dns: readonly string[] }; egress: Egress },
  profile: HardeningProfile,
  identity: { specHash: string; challengeGeneration?: number | undefined },
  files: readonly ContainerFile[] = [],
): ContainerDefinition {
  const ports: PortBinding[] = spec.ports.map((port, i) => ({ containerPort: port.containerPort, protocol: port.protocol, hostPort: placement.hostPorts[i] as number }));
  return {
    name: containerName(target.namespace, target.name),
    image: spec.image,
    env: (spec.env ?? []).map((variable) => `${variable.name}=${variable.value ?? ''}`),
    labels: {
      // The stored spec's hash, not the effective one's: a Challenge changing does
      // not make a running container outdated (it keeps its generation).
      ...instanceLabels({ ...target, team: spec.team, specHash: identity.specHash }),
      [LABELS.challenge]: spec.challenge,
      ...(identity.challengeGeneration === undefined ? {} : { [LABELS.challengeGeneration]: String(identity.challengeGeneration) }),
      [LABELS.node]: placement.node,
      [LABELS.egress]: placement.egress,
    },
    bindAddress: placement.bindAddress,
    ports,
    ...limitsOf(spec, profile),
    ...securityOf(spec, profile),
    nofile: profile.nofile,
    log: profile.log,
    files: [...files],
    network: placement.network.name,
    dns: [...placement.network.dns],
    ...(spec.command === undefined ? {} : { command: spec.command }),
    ...(spec.args === undefined ? {} : { args: spec.args }),
  };
}

/**
 * The labels that make a container an instance's: its identity (uid, namespace,
 * name), team, generation and spec hash. A container made for the instance
 * carries them; a claimed pool container gets them from its claim record.
 */
export function instanceLabels(identity: { uid: string; namespace: string; name: string; team: string; generation: number; specHash: string }): Record<string, string> {
  return {
    [LABELS.uid]: identity.uid,
    [LABELS.namespace]: identity.namespace,
    [LABELS.name]: identity.name,
    [LABELS.team]: identity.team,
    [LABELS.generation]: String(identity.generation),
    [LABELS.specHash]: identity.specHash,
  };
}

/** Where to probe a port published on `bindAddress` from this host. */
export function probeHost(bindAddress: string): string {
  return bindAddress === '0.0.0.0' || bindAddress === '' ? '127.0.0.1' : bindAddress === '::' ? '::1' : bindAddress;
}

/**
 * The definition of an idle pool container of a Challenge (docs/pools.md):
 * the container an instance of it would get, under a pool name and with its
 * Challenge's labels only (no uid, name or team: a claim supplies those), and
 * its files directory bind-mounted read-only where a claim writes the flag.
 */
export function poolContainerDefinition(
  pool: { namespace: string; challenge: string; generation: number; suffix: string },
  spec: InstanceSpec,
  placement: { node: string; bindAddress: string; hostPorts: readonly number[]; network: { name: string; dns: readonly string[] }; egress: Egress },
  profile: HardeningProfile,
  files: { source: string; target: string } | undefined,
): ContainerDefinition {
  const shaped = containerDefinition({ namespace: pool.namespace, name: pool.challenge, uid: '', generation: pool.generation }, spec, placement, profile, { specHash: '', challengeGeneration: pool.generation });
  return {
    ...shaped,
    name: poolContainerName(pool.namespace, pool.challenge, pool.suffix),
    labels: {
      [POOL_LABEL]: pool.challenge,
      [LABELS.namespace]: pool.namespace,
      [LABELS.challenge]: pool.challenge,
      [LABELS.challengeGeneration]: String(pool.generation),
      [LABELS.node]: placement.node,
      [LABELS.egress]: placement.egress,
      ...(files === undefined ? {} : { [POOL_FILES_LABEL]: poolContainerName(pool.namespace, pool.challenge, pool.suffix) }),
    },
    ...(files === undefined ? {} : { binds: [files] }),
  };
}
