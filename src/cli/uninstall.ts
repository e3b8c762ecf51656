import { KubeChallengeApi } from '../adapters/kubernetes/challenge-api.ts';
import { KubeChallengeSource } from '../adapters/kubernetes/challenge-source.ts';
import { KubeInstanceApi } from '../adapters/kubernetes/instance-api.ts';
import { loadKubeConfig } from '../adapters/kubernetes/kube-config.ts';
import type { ConnectionConfig } from '../config/config.ts';
import { CHALLENGE_FINALIZER } from '../domain/names.ts';
import { UsageError } from './output.ts';

/** What `ctfleet uninstall` needs besides the connection: whose instances, how long to wait. */
export interface UninstallOptions {
  /** The namespaces the release manages (CTFLEET_NAMESPACES); empty: every namespace. */
  namespaces: readonly string[];
  /** instances: delete them and wait until released; challenges: take ctfleet's finalizer off. */
  steps: { instances: boolean; challenges: boolean };
  timeoutMs: number;
  /** Challenges: how long no finalizer may come back before they count as released (a stopping controller may re-add one). */
  settleMs?: number;
  pollMs?: number;
  print?: (line: string) => void;
}

/** Parses `uninstall --yes [--instances|--challenges] [--timeout SECONDS]`: without --yes it refuses, as `queue purge` does. */
export function parseUninstallArgs(args: readonly string[]): Pick<UninstallOptions, 'steps' | 'timeoutMs'> {
  if (!args.includes('--yes')) throw new UsageError('uninstall deletes every ChallengeInstance of this deployment and removes their containers: add --yes to do it');
  const only = { instances: args.includes('--instances'), challenges: args.includes('--challenges') };
  const steps = only.instances || only.challenges ? only : { instances: true, challenges: true };
  const flag = args.indexOf('--timeout');
  if (flag === -1) return { steps, timeoutMs: 300_000 };
  const seconds = Number(args[flag + 1]);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600) throw new UsageError('uninstall: --timeout must be whole seconds from 1 to 3600');
  return { steps, timeoutMs: seconds * 1000 };
}

const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `ctfleet uninstall --yes`: what the chart's delete hooks run, so that nothing is
 * left running on a node that nobody manages, and nothing blocks a later delete.
 * `--instances` (pre-delete, while the controller and the workers still run):
 * deletes every ChallengeInstance in the release's namespaces and waits while
 * their containers are removed and they are released. `--challenges`
 * (post-delete, once the controller is going): takes ctfleet's finalizer off the
 * Challenges, which would otherwise block their deletion for ever, and checks
 * that no stopping controller puts one back. Both, without either flag.
 * Exit 0 when done; 1 when something remains at the timeout (named), so
 * `helm uninstall` stops with the hook's failure rather than orphaning containers.
 */
export async function runUninstall(config: ConnectionConfig, options: UninstallOptions): Promise<number> {
  const { namespaces, steps, timeoutMs, settleMs = 10_000, pollMs = 1000, print = (line: string) => process.stdout.write(`${line}\n`) } = options;
  const kubeConfig = loadKubeConfig(config.kubeconfigPath);
  const where = namespaces.length === 0 ? 'every namespace' : `namespaces ${namespaces.join(', ')}`;
  const deadline = Date.now() + timeoutMs;

  if (steps.instances) {
    const instances = new KubeInstanceApi(kubeConfig);
    const found = await instances.list(namespaces);
    print(`Deleting ${plural(found.length, 'ChallengeInstance')} in ${where}; the controller removes their containers.`);
    for (const instance of found) {
      if (instance.metadata.deletionTimestamp === undefined) await instances.delete(instance);
    }
    let left = await instances.list(namespaces);
    let reported = -1;
    while (left.length > 0) {
      if (Date.now() >= deadline) {
        const names = left.slice(0, 20).map((instance) => `${instance.metadata.namespace}/${instance.metadata.name} (${instance.status?.phase ?? 'no phase'})`);
        print(`Gave up after ${Math.round(timeoutMs / 1000)} s: ${plural(left.length, 'ChallengeInstance')} still being removed: ${names.join(', ')}${left.length > names.length ? ', …' : ''}. Is the controller running? Their containers stay until it releases them.`);
        return 1;
      }
      if (left.length !== reported) print(`Waiting for ${plural(left.length, 'ChallengeInstance')} to be released…`);
      reported = left.length;
      await sleep(pollMs);
      left = await instances.list(namespaces);
    }
    print('Every ChallengeInstance is gone, and its container with it.');
  }

  if (steps.challenges) {
    const source = new KubeChallengeSource(kubeConfig);
    const writer = new KubeChallengeApi(kubeConfig);
    let released = 0;
    let quietSince = Date.now();
    for (;;) {
      const held = (await source.list(namespaces)).filter((challenge) => challenge.metadata.finalizers?.includes(CHALLENGE_FINALIZER) === true);
      if (held.length > 0) {
        if (Date.now() >= deadline) {
          print(`Gave up after ${Math.round(timeoutMs / 1000)} s: something keeps putting finalizer ${CHALLENGE_FINALIZER} back on ${plural(held.length, 'Challenge')} (is a controller of this deployment still running?).`);
          return 1;
        }
        for (const challenge of held) await writer.removeFinalizer(challenge);
        released += held.length;
        quietSince = Date.now();
      } else if (Date.now() - quietSince >= settleMs) break;
      await sleep(pollMs);
    }
    print(`Released the Challenges in ${where} (finalizer ${CHALLENGE_FINALIZER} removed ${released} time${released === 1 ? '' : 's'}); they stay, and a new install takes them up again.`);
  }
  return 0;
}
