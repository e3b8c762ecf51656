import type { Endpoint, InstanceSpec } from '../domain/challenge-instance.ts';
import { permanent } from '../domain/errors.ts';
import type { JobTarget } from '../domain/jobs.ts';
import { containerName, LABELS } from '../domain/names.ts';
import { specHash } from '../domain/spec-hash.ts';
import type { ContainerDefinition, PortBinding } from '../domain/ports.ts';
import type { HardeningProfile } from '../domain/hardening.ts';
import { toBytes, toNanoCpus } from '../domain/quantities.ts';

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

/** The full definition of an instance's container on `hostPorts`. */
export function containerDefinition(
  target: JobTarget,
  spec: InstanceSpec,
  placement: { node: string; bindAddress: string; hostPorts: readonly number[] },
  profile: HardeningProfile,
): ContainerDefinition {
  const ports: PortBinding[] = spec.ports.map((port, i) => ({ containerPort: port.containerPort, protocol: port.protocol, hostPort: placement.hostPorts[i] as number }));
  return {
    name: containerName(target.namespace, target.name),
    image: spec.image,
    env: (spec.env ?? []).map((variable) => `${variable.name}=${variable.value ?? ''}`),
    labels: {
      [LABELS.uid]: target.uid,
      [LABELS.namespace]: target.namespace,
      [LABELS.name]: target.name,
      [LABELS.team]: spec.team,
      [LABELS.challenge]: spec.challenge,
      [LABELS.generation]: String(target.generation),
      [LABELS.specHash]: specHash(spec),
      [LABELS.node]: placement.node,
    },
    bindAddress: placement.bindAddress,
    ports,
    ...limitsOf(spec, profile),
    capabilities: profile.capabilities,
    nofile: profile.nofile,
    log: profile.log,
    ...(spec.command === undefined ? {} : { command: spec.command }),
    ...(spec.args === undefined ? {} : { args: spec.args }),
  };
}

/** Where to probe a port published on `bindAddress` from this host. */
export function probeHost(bindAddress: string): string {
  return bindAddress === '0.0.0.0' || bindAddress === '' ? '127.0.0.1' : bindAddress === '::' ? '::1' : bindAddress;
}
