import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { DEFAULT_ISOLATION } from '../../src/domain/isolation.ts';
import { FIREWALL_HOOKS, firewallRules, instanceNetworks } from '../../src/worker/isolation-plan.ts';

const run = promisify(execFile);

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
