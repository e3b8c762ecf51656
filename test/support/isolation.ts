import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import type Docker from 'dockerode';
import { DEFAULT_ISOLATION } from '../../src/domain/isolation.ts';
import { FIREWALL_HOOKS, firewallRules, instanceNetworks } from '../../src/worker/isolation-plan.ts';
import { containersOf, isRunning, kubectl, manifest, type CtfleetProcess, type Instances, type RawInstance } from './ctfleet.ts';
import { listen } from './stack.ts';

const run = promisify(execFile);

/** Runs `script` with sh inside a container; resolves with its exit code and output, never throws. */
export async function shell(container: string, script: string, timeoutMs = 20_000): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run('docker', ['exec', container, 'sh', '-c', script], { timeout: timeoutMs });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failure = error as { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof failure.code === 'number' ? failure.code : -1, output: `${failure.stdout ?? ''}${failure.stderr ?? ''}` };
  }
}

/**
 * True when an HTTP request from inside `container` to `host:port` gets an HTTP
 * answer within 2 s. busybox nc, not wget: the static busybox's wget crashes in
 * its resolver, which would pass for a refusal.
 */
export async function reachesFrom(container: string, host: string, port: number): Promise<boolean> {
  const { output } = await shell(container, `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} ${String(port)}`);
  return /^HTTP\/1\.[01] \d{3}/m.test(output);
}

export interface NodeService {
  port: number;
  close(): Promise<void>;
}

/** A service on every address of the node, as kubelet, Redis or ctfleet's own ports would be: it answers `node service`. */
export async function startNodeService(): Promise<NodeService> {
  const server = createServer((_request, response) => response.end('node service'));
  await listen(server, 0, '0.0.0.0');
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => { resolve(); })),
  };
}

/** The tenants of a hostile-tenant test: each instance's status and container address, by name. */
export class Tenants {
  readonly running = new Map<string, RawInstance>();
  readonly address = new Map<string, string>();

  containerOf(name: string): string {
    return this.running.get(name)?.status?.containerId ?? assert.fail(`${name} has no container`);
  }

  hostPortOf(name: string): number {
    return this.running.get(name)?.status?.endpoints?.[0]?.port ?? assert.fail(`${name} has no endpoint`);
  }

  /** Applies their instances, waits for each to run, and records its status and its container's address. */
  async run(docker: Docker, instances: Instances, namespace: string, specs: Record<string, Record<string, unknown>>): Promise<void> {
    const applied = await kubectl(['apply', '-f', '-'], Object.entries(specs).map(([name, spec]) => manifest(namespace, name, spec)).join('\n'));
    assert.equal(applied.code, 0, applied.stderr);
    for (const name of Object.keys(specs)) {
      const instance = await instances.waitFor(namespace, name, 'to run', isRunning, 60_000);
      this.running.set(name, instance);
      const inspected = await docker.getContainer(instance.status?.containerId ?? '').inspect();
      this.address.set(name, Object.values(inspected.NetworkSettings.Networks)[0]?.IPAddress ?? '');
    }
  }
}

/** Deletes the tenants' instances while ctfleet runs (their finalizers), stops it, and removes any container left. */
export async function removeTenants(docker: Docker, namespace: string, ctfleet: CtfleetProcess): Promise<void> {
  await kubectl(['delete', 'challengeinstances', '--all', '-n', namespace, '--wait=true', '--timeout=60s']);
  await ctfleet.stop();
  for (const container of await containersOf(docker, namespace)) await docker.getContainer(container.Id).remove({ force: true });
}

/** The node's instance networks under the default settings every test worker uses. */
export const NETWORKS = instanceNetworks(DEFAULT_ISOLATION);
export const RULES = firewallRules(DEFAULT_ISOLATION);

/** `iptables-save -t filter`, read (never sent anywhere): the rules are checked by reading them. */
export async function filterTable(): Promise<string[]> {
  const { stdout } = await run('iptables-save', ['-t', 'filter']);
  return stdout.split('\n');
}

/** Rules of one chain, without the `-A CHAIN ` prefix. */
export function chainRules(table: readonly string[], chain: string): string[] {
  return table.filter((line) => line.startsWith(`-A ${chain} `)).map((line) => line.slice(`-A ${chain} `.length));
}

/**
 * What is wrong with the node's isolation, as the engine and the filter table
 * show it: `containers` not on an instance network; ctfleet networks other than
 * the current two (left over); the current ones missing; ctfleet's chains not as
 * the worker writes them; a hook jump missing or doubled.
 */
export async function isolationProblems(docker: Docker, containers: readonly Docker.ContainerInfo[]): Promise<string[]> {
  const problems: string[] = [];
  const current = new Set(Object.values(NETWORKS).map((network) => network.name));
  for (const container of containers) {
    const joined = Object.keys(container.NetworkSettings.Networks);
    if (joined.length !== 1 || !current.has(joined[0] ?? '')) problems.push(`container ${container.Names[0] ?? container.Id} is on ${joined.join(', ') || 'no network'}, not on one instance network`);
  }
  const managed = await docker.listNetworks({ filters: { label: ['app.kubernetes.io/managed-by=ctfleet'] } });
  for (const network of managed) if (!current.has(network.Name)) problems.push(`network ${network.Name} is left over`);
  for (const name of current) if (!managed.some((network) => network.Name === name)) problems.push(`instance network ${name} is missing`);
  const table = await filterTable();
  for (const [chain, rules] of Object.entries(RULES)) {
    const actual = chainRules(table, chain);
    if (actual.join('\n') !== rules.join('\n')) problems.push(`chain ${chain} holds ${actual.length} rules, not the ${rules.length} the worker writes`);
  }
  for (const hook of FIREWALL_HOOKS) {
    const jumps = chainRules(table, hook.from).filter((rule) => rule === `-j ${hook.to}`).length;
    if (jumps !== 1) problems.push(`${hook.from} jumps to ${hook.to} ${jumps} times, not once`);
  }
  return problems;
}
