import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, type CommandResult } from './ctfleet.ts';
import { eventually } from './stack.ts';

/**
 * The local cluster of `hack/stack.sh up --cluster` (docs/local-cluster.md): a real
 * kubelet whose pods run the Helm chart. Helpers for the tests that install the
 * chart there: releases, pods, exec.
 */
export const CHART = join(ROOT, 'charts/ctfleet');
/** The chart values for this cluster: local images, no pulls, no persistence. */
export const LOCAL_VALUES = join(ROOT, 'hack/cluster/values.yaml');
/** Names and addresses hack/cluster/cluster.sh gives the node. */
export const NODE_NAME = 'ctfleet-node';
export const NODE_IP = '10.215.0.1';
export const DOCKER_SOCKET = '/var/run/docker.sock';

/** Runs a command (kubectl and helm are the stack's, first on PATH) with optional stdin. */
export function run(command: string, args: string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { timeout: options.timeoutMs ?? 120_000, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
    if (options.stdin !== undefined) child.stdin?.end(options.stdin);
  });
}

/** The command's stdout; throws with its output when it failed. */
export async function ok(what: string, result: Promise<CommandResult>): Promise<string> {
  const { code, stdout, stderr } = await result;
  if (code !== 0) throw new Error(`${what} failed (exit ${code}): ${stderr}${stdout.slice(0, 2000)}`);
  return stdout;
}

export const kubectl = (args: string[], stdin?: string): Promise<CommandResult> => run('kubectl', args, stdin === undefined ? {} : { stdin });
export const helm = (args: string[], timeoutMs = 300_000): Promise<CommandResult> => run('helm', args, { timeoutMs });

/**
 * Why the cluster tests cannot run here, or undefined when the node is Ready.
 * hack/test.sh always starts the cluster; a bare `node --test` may not have.
 */
export async function clusterUnavailable(): Promise<string | undefined> {
  if (process.env.KUBECONFIG === undefined) return 'the local stack is not in the environment: eval "$(hack/stack.sh env)" after hack/stack.sh up --cluster';
  const node = await kubectl(['get', 'node', NODE_NAME, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
  if (node.code !== 0) return `the local cluster is not up (no node ${NODE_NAME}): run hack/stack.sh up --cluster`;
  if (node.stdout.trim() !== 'True') return `node ${NODE_NAME} is not Ready: see hack/stack.sh status and .stack/logs/kubelet.log`;
  return undefined;
}

/** The gid owning the Docker socket: the chart's worker.dockerSocketGroup on this machine. */
export function dockerSocketGroup(): number {
  return statSync(DOCKER_SOCKET).gid;
}

export interface Release {
  name: string;
  namespace: string;
}

/**
 * `helm install` of charts/ctfleet with the local values, the real Docker socket
 * group and `set` (key=value pairs), into `release.namespace` (created if missing).
 * Does not wait: waitForPods says what is not Ready, which helm --wait does not.
 */
export async function installRelease(release: Release, set: string[] = []): Promise<void> {
  await ok(
    `helm install ${release.name}`,
    helm([
      'install', release.name, CHART, '-n', release.namespace, '--create-namespace', '-f', LOCAL_VALUES,
      '--set', `worker.dockerSocketGroup=${dockerSocketGroup()}`, ...set.flatMap((pair) => ['--set', pair]),
    ]),
  );
}

/** `helm uninstall` and waits until the release's pods are gone; safe to call when it is not installed. */
export async function uninstallRelease(release: Release, timeoutMs = 120_000): Promise<void> {
  await helm(['uninstall', release.name, '-n', release.namespace, '--wait', '--timeout', `${Math.round(timeoutMs / 1000)}s`, '--ignore-not-found'], timeoutMs + 10_000);
}

interface PodJson {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { nodeName?: string };
  status: {
    phase?: string;
    hostIP?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; ready: boolean; restartCount: number; state?: Record<string, { reason?: string; message?: string }> }[];
  };
}

export interface PodSummary {
  name: string;
  component: string;
  node: string;
  ready: boolean;
  hostIP: string;
  podIP: string;
  /** e.g. "Running", "Pending", "ContainerCreating", "CrashLoopBackOff (3 restarts)". */
  state: string;
}

/** The pods of a namespace (optionally a label selector), summarised. */
export async function pods(namespace: string, selector?: string): Promise<PodSummary[]> {
  const json = await ok('kubectl get pods', kubectl(['get', 'pods', '-n', namespace, '-o', 'json', ...(selector === undefined ? [] : ['-l', selector])]));
  return (JSON.parse(json) as { items: PodJson[] }).items.map((pod) => {
    const waiting = pod.status.containerStatuses?.map((container) => {
      const [state, detail] = Object.entries(container.state ?? {})[0] ?? ['unknown', {}];
      return `${container.name}: ${detail.reason ?? state}${container.restartCount > 0 ? ` (${container.restartCount} restarts)` : ''}`;
    });
    return {
      name: pod.metadata.name,
      component: pod.metadata.labels?.['app.kubernetes.io/component'] ?? pod.metadata.labels?.['k8s-app'] ?? '',
      node: pod.spec.nodeName ?? '',
      ready: pod.status.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True') ?? false,
      hostIP: pod.status.hostIP ?? '',
      podIP: pod.status.podIP ?? '',
      state: `${pod.status.phase ?? 'Unknown'}${waiting === undefined ? '' : ` [${waiting.join(', ')}]`}`,
    };
  });
}

/**
 * Waits until the namespace has exactly `expected` Ready pods per component
 * (app.kubernetes.io/component, or k8s-app) and no other pods; fails listing each
 * pod's state and the namespace's recent events.
 */
export async function waitForPods(namespace: string, expected: Record<string, number>, timeoutMs: number): Promise<PodSummary[]> {
  let last: PodSummary[] = [];
  try {
    return await eventually(`pods of ${namespace} Ready (${JSON.stringify(expected)})`, timeoutMs, async () => {
      last = await pods(namespace);
      const counts: Record<string, number> = {};
      for (const pod of last) if (pod.ready) counts[pod.component] = (counts[pod.component] ?? 0) + 1;
      const settled = last.every((pod) => pod.ready) && Object.entries(expected).every(([component, count]) => counts[component] === count);
      return settled && last.length === Object.values(expected).reduce((sum, count) => sum + count, 0) ? last : undefined;
    });
  } catch (error) {
    const events = await kubectl(['get', 'events', '-n', namespace, '--sort-by=.lastTimestamp']);
    const states = last.map((pod) => `  ${pod.name}: ${pod.state}`).join('\n');
    throw new Error(`${(error as Error).message}\npods:\n${states}\nevents (last 20):\n${events.stdout.trim().split('\n').slice(-20).join('\n')}`, { cause: error });
  }
}

/** `kubectl exec` in a pod's container; the command's result, not thrown on failure. */
export function kubectlExec(namespace: string, pod: string, container: string, command: string[]): Promise<CommandResult> {
  return kubectl(['exec', '-n', namespace, pod, '-c', container, '--', ...command]);
}

/** The fields of /proc/<pid>/status (Uid, Gid, Groups, CapEff, NoNewPrivs, Seccomp, …) by name. */
export function parseProcStatus(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .map((line) => /^([A-Za-z_]+):\s*(.*)$/.exec(line))
      .filter((match): match is RegExpExecArray => match !== null)
      .map((match) => [match[1] as string, (match[2] ?? '').trim()]),
  );
}
