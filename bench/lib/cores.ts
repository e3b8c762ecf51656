// A dedicated Docker node on a machine that has none. In a cluster the API server,
// etcd, Redis and ctfleet's controller run on the control plane, and only dockerd,
// the containers and ctfleet's worker on the Docker node; on this machine they all
// share its cores, so every millisecond the control plane spends comes out of
// dockerd's. `--node-cpus` gives the node's side the listed CPUs and everything the
// control plane runs (and the benchmark itself, which plays the platform) the
// others, for both sides of a round alike: raw dockerode's dockerd gets the same
// CPUs as ctfleet's. Affinity is inherited, so the shims and containers dockerd
// starts stay on the node's CPUs. Every process is given all CPUs back at the end.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** Command names (as /proc shows them: at most 15 characters) of the Docker node's processes. */
const NODE_SIDE = ['dockerd', 'containerd', 'containerd-shim', 'docker-proxy'];
/** …and of the control plane's. */
const CONTROL_PLANE = ['kube-apiserver', 'etcd', 'redis-server', 'kube-controller', 'kube-scheduler'];

export interface CoreSplit {
  /** The CPUs of the Docker node's side, as taskset lists them (`1`), and of the rest (`0`). */
  node: string;
  rest: string;
  pinNode: (pid: number | undefined) => void;
  pinRest: (pid: number | undefined) => void;
  /** Gives every process pinned (and every node-side process started since) all CPUs again. */
  release: () => void;
}

function pidsNamed(names: readonly string[]): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    try {
      const comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      return names.includes(comm) ? [Number(entry)] : [];
    } catch {
      return []; // it exited while listed
    }
  });
}

function pin(pid: number, cpus: string): void {
  try {
    // -a: every thread (libuv's pool, Go's runtime threads), not only the main one.
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
  } catch {
    // It exited in between: nothing to pin.
  }
}

/** Parses `--node-cpus` (a comma-separated list of CPU numbers) against this machine's CPUs. */
export function parseNodeCpus(text: string, cpus = availableParallelism()): number[] {
  const listed = text.split(',').map((part) => part.trim());
  const numbers = listed.map(Number);
  if (listed.some((part) => !/^\d+$/.test(part)) || numbers.some((cpu) => cpu >= cpus)) {
    throw new Error(`--node-cpus: must list CPU numbers from 0 to ${String(cpus - 1)}, separated by commas (got "${text}")`);
  }
  if (new Set(numbers).size >= cpus) throw new Error(`--node-cpus: must leave at least one of the ${String(cpus)} CPUs to the control plane (got "${text}")`);
  return [...new Set(numbers)].sort((a, b) => a - b);
}

/** Pins the stack's running processes to their side and returns the way to pin ctfleet's and to undo it all. */
export function splitCores(nodeCpus: number[], cpus = availableParallelism()): CoreSplit {
  const all = Array.from({ length: cpus }, (_, cpu) => cpu);
  const node = nodeCpus.join(',');
  const rest = all.filter((cpu) => !nodeCpus.includes(cpu)).join(',');
  const pinned = new Set<number>();
  const pinTo = (cpuList: string) => (pid: number | undefined): void => {
    if (pid === undefined) return;
    pinned.add(pid);
    pin(pid, cpuList);
  };
  const split: CoreSplit = {
    node,
    rest,
    pinNode: pinTo(node),
    pinRest: pinTo(rest),
    release: () => {
      for (const pid of new Set([...pinned, ...pidsNamed(NODE_SIDE)])) pin(pid, all.join(','));
      pinned.clear();
    },
  };
  for (const pid of pidsNamed(NODE_SIDE)) split.pinNode(pid);
  for (const pid of pidsNamed(CONTROL_PLANE)) split.pinRest(pid);
  split.pinRest(process.pid);
  process.once('exit', split.release);
  return split;
}
