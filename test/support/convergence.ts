import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type Docker from 'dockerode';
import { isRunning, type RawInstance } from './ctfleet.ts';
import { isolationProblems } from './isolation.ts';

const HOST_PORTS_LABEL = 'ctfleet.io/host-ports';

/**
 * The checks every fault-injection test ends with, for one namespace:
 * - every resource converged to what its spec asks: Running (serving HTTP when
 *   it has an http endpoint), Stopped, or Expired when its lifetime ended;
 * - exactly one container per running instance, the one its status names,
 *   published on the port its endpoint says;
 * - no container without a resource, none for an expired or deleted instance
 *   (a claimed pool container is its instance's by name; idle ones are no one's);
 * - no host port shared by two containers on the engine;
 * - the node's isolation intact: every container on an instance network, no
 *   network left over, the firewall chains whole with one jump each.
 * Returns the problems found; none means converged.
 */
export async function convergenceProblems(kubeConfig: KubeConfig, docker: Docker, namespace: string): Promise<string[]> {
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const list = (await custom.listNamespacedCustomObject({ group: 'ctfleet.io', version: 'v1alpha1', namespace, plural: 'challengeinstances' })) as { items: RawInstance[] };
  const containers = await docker.listContainers({ all: true, filters: { label: [`ctfleet.io/namespace=${namespace}`] } });
  const problems: string[] = [];
  const byUid = new Map<string, Docker.ContainerInfo[]>();
  // A claimed pool container carries its Challenge's labels only: its instance is the one it is named after.
  const uidByName = new Map(list.items.map((instance) => [`/ctfleet-${namespace}_${instance.metadata.name}`, instance.metadata.uid]));
  const uidOf = (container: Docker.ContainerInfo): string =>
    container.Labels['ctfleet.io/uid'] ?? (container.Labels['ctfleet.io/pool'] === undefined ? '' : (uidByName.get(container.Names[0] ?? '') ?? ''));
  // Idle pool containers (still under their pool name) belong to no instance.
  const owned = containers.filter((container) => !(container.Names[0] ?? '').startsWith('/ctfpool-'));
  for (const container of owned) {
    const uid = uidOf(container);
    byUid.set(uid, [...(byUid.get(uid) ?? []), container]);
  }
  const uids = new Set(list.items.map((instance) => instance.metadata.uid));
  for (const container of owned) {
    if (!uids.has(uidOf(container))) problems.push(`container ${container.Names[0] ?? container.Id} has no resource`);
  }

  const probes: Promise<void>[] = [];
  for (const instance of list.items) {
    const name = instance.metadata.name;
    const status = instance.status;
    const own = byUid.get(instance.metadata.uid) ?? [];
    if ((instance.metadata as { deletionTimestamp?: string }).deletionTimestamp !== undefined) {
      problems.push(`${name} is still terminating (${status?.reason ?? ''})`);
      continue;
    }
    // Expired at ttlSeconds, or at the deployment's maximum lifetime without one.
    if (status?.phase === 'Expired' && status.expiresAt !== undefined) {
      if (own.length > 0) problems.push(`${name} expired but still has ${own.length} container(s)`);
      continue;
    }
    if (instance.spec.desiredState === 'Stopped') {
      if (status?.phase !== 'Stopped') problems.push(`${name} should be Stopped, is ${status?.phase ?? 'unset'} (${status?.reason ?? ''})`);
      if (own.some((container) => container.State === 'running')) problems.push(`${name} is Stopped but its container runs`);
      continue;
    }
    if (!isRunning(instance)) {
      problems.push(`${name} should be Running, is ${status?.phase ?? 'unset'} (${status?.reason ?? ''}: ${status?.message ?? ''})`);
      continue;
    }
    if (own.length !== 1) {
      problems.push(`${name} runs with ${own.length} containers, not 1`);
      continue;
    }
    const container = own[0] as Docker.ContainerInfo;
    if (container.State !== 'running') problems.push(`${name}'s container is ${container.State}`);
    if (container.Id !== status?.containerId) problems.push(`${name}'s status names container ${status?.containerId ?? 'none'}, but ${container.Id.slice(0, 12)} runs`);
    const published = container.Ports.map((port) => port.PublicPort);
    for (const endpoint of status?.endpoints ?? []) {
      if (!published.includes(endpoint.port)) problems.push(`${name}'s endpoint port ${endpoint.port} is not published by its container (${published.join(',')})`);
      if (endpoint.url?.startsWith('http://') === true) {
        const url = endpoint.url;
        probes.push(
          fetch(url, { signal: AbortSignal.timeout(3_000) }).then(
            (response) => {
              if (!response.ok) problems.push(`${name}: GET ${url} answered ${response.status}`);
            },
            (error: unknown) => {
              problems.push(`${name}: GET ${url} failed: ${error instanceof Error ? error.message : String(error)}`);
            },
          ),
        );
      }
    }
  }
  await Promise.all(probes);

  // Host ports must be unique over every ctfleet container on the engine.
  const all = await docker.listContainers({ all: true, filters: { label: ['app.kubernetes.io/managed-by=ctfleet'] } });
  const owners = new Map<string, string>();
  for (const container of all) {
    for (const port of (container.Labels[HOST_PORTS_LABEL] ?? '').split(',').filter((value) => value !== '')) {
      const other = owners.get(port);
      if (other !== undefined) problems.push(`host port ${port} is shared by ${other} and ${container.Names[0] ?? container.Id}`);
      owners.set(port, container.Names[0] ?? container.Id);
    }
  }
  problems.push(...(await isolationProblems(docker, containers)));
  return problems;
}

/**
 * Polls {@link convergenceProblems} until there are none; resolves with how long
 * convergence took from `since`, or fails listing what is still wrong.
 */
export async function waitConverged(kubeConfig: KubeConfig, docker: Docker, namespace: string, since: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let problems: string[];
    try {
      problems = await convergenceProblems(kubeConfig, docker, namespace);
      if (problems.length === 0) return Date.now() - since;
    } catch (error) {
      problems = [`checking failed: ${error instanceof Error ? error.message : String(error)}`];
    }
    if (Date.now() > deadline) throw new Error(`${namespace} did not converge within ${timeoutMs} ms:\n  ${problems.slice(0, 20).join('\n  ')}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
