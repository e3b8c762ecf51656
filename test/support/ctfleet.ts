import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import Docker from 'dockerode';
import { Redis } from 'ioredis';
import { loadKubeConfig } from '../../src/adapters/kubernetes/kube-config.ts';
import { eventually, stackConfig } from './stack.ts';

export const ROOT = new URL('../..', import.meta.url).pathname;
/** ctfleet's CRDs, each with the name `kubectl wait` knows it by. */
export const CRDS = [
  { file: join(ROOT, 'manifests/crds/ctfleet.io_challengeinstances.yaml'), name: 'challengeinstances.ctfleet.io' },
  { file: join(ROOT, 'manifests/crds/ctfleet.io_challenges.yaml'), name: 'challenges.ctfleet.io' },
] as const;
export const ARTIFACTS = join(ROOT, 'test-artifacts');
/** The deployment allow-list of the tests' ctfleet processes: the images hack/images builds. */
export const TEST_IMAGES = 'ctfleet-test/*';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs kubectl (the stack's, first on PATH) with optional stdin. */
export function kubectl(args: string[], stdin?: string): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile('kubectl', args, { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

/** Installs the CRDs (ChallengeInstance and Challenge) and waits until the API server serves both. */
export async function installCrd(): Promise<void> {
  const applied = await kubectl(['apply', '--server-side', '--force-conflicts', ...CRDS.flatMap((crd) => ['-f', crd.file])]);
  if (applied.code !== 0) throw new Error(`installing the CRDs failed: ${applied.stderr}`);
  const waited = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...CRDS.map((crd) => `crd/${crd.name}`)]);
  if (waited.code !== 0) throw new Error(`the CRDs did not become Established: ${waited.stderr}`);
}

/**
 * Everything an end-to-end test file needs before it starts ctfleet: the CRDs
 * installed and Established, and a fresh namespace of its own.
 */
export async function prepareNamespace(namespace: string): Promise<{ kubeConfig: KubeConfig; instances: Instances }> {
  const kubeConfig = loadKubeConfig(stackConfig().kubeconfigPath);
  await installCrd();
  await kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  return { kubeConfig, instances: new Instances(kubeConfig) };
}

/** A ctfleet process (`all` by default) with its JSON log in test-artifacts/. */
export class CtfleetProcess {
  readonly child: ChildProcess;
  /** Where its stdout and stderr go. */
  readonly logFile: string;

  constructor(role: 'all' | 'controller' | 'worker' | 'api', env: Record<string, string>, logName: string) {
    mkdirSync(ARTIFACTS, { recursive: true });
    this.logFile = join(ARTIFACTS, `${logName}.log`);
    const log = createWriteStream(this.logFile);
    // Any free ports for /healthz, /readyz and /metrics, and for the platform API, unless the test picks them.
    this.child = spawn(process.execPath, [join(ROOT, 'src/main.ts'), role], { env: { ...process.env, CTFLEET_HTTP_PORT: '0', CTFLEET_API_PORT: '0', CTFLEET_ALLOWED_IMAGES: TEST_IMAGES, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.pipe(log);
    this.child.stderr?.pipe(log);
  }

  /** Resolves once its /readyz answers 200 (the port read from its log: tests start it on any free port). */
  async untilReady(timeoutMs = 60_000): Promise<void> {
    await eventually(`${this.logFile} to be ready`, timeoutMs, async () => {
      const address = /Serving \/healthz, \/readyz and \/metrics on ([\d.]+:\d+)/.exec(readFileSync(this.logFile, 'utf8'))?.[1];
      if (address === undefined) return undefined;
      const response = await fetch(`http://${address}/readyz`, { signal: AbortSignal.timeout(5_000) });
      return response.status === 200 ? true : undefined;
    });
  }

  /** SIGTERM, then resolves with the exit code (null if a signal had already ended it). */
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    return exited;
  }
}

export interface RawInstance {
  metadata: { name: string; namespace: string; uid: string; generation: number; finalizers?: string[] };
  spec: Record<string, unknown>;
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    observedGeneration?: number;
    node?: string;
    containerId?: string;
    endpoints?: { name: string; host: string; port: number; protocol: string; url?: string }[];
    conditions?: { type: string; status: string; reason: string; message?: string; lastTransitionTime?: string; observedGeneration?: number }[];
    lastJob?: { id: string; action: string; queue?: string };
    startedAt?: string;
    expiresAt?: string;
    reschedules?: number;
  };
}

export class Instances {
  private readonly api: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async get(namespace: string, name: string): Promise<RawInstance | undefined> {
    try {
      return (await this.api.getNamespacedCustomObject({ group: 'ctfleet.io', version: 'v1alpha1', namespace, plural: 'challengeinstances', name })) as RawInstance;
    } catch (error) {
      if ((error as { code?: number }).code === 404) return undefined;
      throw error;
    }
  }

  /** Waits until the instance satisfies `predicate`; fails with its last status otherwise. */
  async waitFor(namespace: string, name: string, what: string, predicate: (instance: RawInstance) => boolean, timeoutMs = 60_000): Promise<RawInstance> {
    let last: RawInstance | undefined;
    try {
      return await eventually(`${namespace}/${name} ${what}`, timeoutMs, async () => {
        last = await this.get(namespace, name);
        return last !== undefined && predicate(last) ? last : undefined;
      });
    } catch (error) {
      throw new Error(`${(error as Error).message}; last status: ${JSON.stringify(last?.status)}`, { cause: error });
    }
  }

  async waitForGone(namespace: string, name: string, timeoutMs = 60_000): Promise<void> {
    await eventually(`${namespace}/${name} to be deleted`, timeoutMs, async () => ((await this.get(namespace, name)) === undefined ? true : undefined));
  }
}

export function isRunning(instance: RawInstance): boolean {
  const ready = instance.status?.conditions?.find((condition) => condition.type === 'Ready');
  return (
    instance.status?.phase === 'Running' &&
    instance.status.observedGeneration === instance.metadata.generation &&
    ready?.status === 'True' &&
    ready.observedGeneration === instance.metadata.generation
  );
}

/** A ChallengeInstance manifest for kubectl apply. */
export function manifest(namespace: string, name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'ctfleet.io/v1alpha1', kind: 'ChallengeInstance', metadata: { name, namespace }, spec });
}

/** A Challenge of the web test image whose page greets with its name; `spec` adds or overrides fields. */
export function challengeManifest(namespace: string, name: string, spec: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: 'ctfleet.io/v1alpha1',
    kind: 'Challenge',
    metadata: { name, namespace },
    spec: {
      image: 'ctfleet-test/web:1',
      imagePullPolicy: 'Never',
      ports: [{ name: 'http', containerPort: 8080 }],
      env: [{ name: 'GREETING', value: `hello from ${name}` }],
      resources: { cpu: '250m', memory: '64Mi', pids: 64 },
      ...spec,
    },
  });
}

/** A team's instance of a Challenge: `spec.challengeRef`, and `extra` fields an instance may set. */
export function challengeInstanceManifest(namespace: string, name: string, team: string, challenge: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ apiVersion: 'ctfleet.io/v1alpha1', kind: 'ChallengeInstance', metadata: { name, namespace }, spec: { team, challengeRef: { name: challenge }, ...extra } });
}

export function webSpec(team: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    team,
    challenge: 'web-101',
    image: 'ctfleet-test/web:1',
    imagePullPolicy: 'Never',
    ports: [{ name: 'http', containerPort: 8080 }],
    env: [{ name: 'GREETING', value: `hello ${team}` }],
    resources: { cpu: '250m', memory: '64Mi', pids: 64 },
    ...extra,
  };
}

/** Containers ctfleet manages for instances of one namespace. */
export async function containersOf(docker: Docker, namespace: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`ctfleet.io/namespace=${namespace}`] } });
}

export async function fetchText(url: string): Promise<string> {
  return eventually(`GET ${url}`, 10_000, async () => {
    const response = await fetch(url);
    return response.ok ? response.text() : undefined;
  });
}

/** Deletes a namespace's instances, then its Challenges, and waits: a running controller releases their finalizers. */
export async function deleteInstancesAndChallenges(namespace: string): Promise<void> {
  await kubectl(['delete', 'challengeinstances', '--all', '-n', namespace, '--wait=true', '--timeout=60s']);
  await kubectl(['delete', 'challenges', '--all', '-n', namespace, '--wait=true', '--timeout=60s']);
}

/** Deletes every Redis key under a test's prefix (its queues, jobs and observed state). */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(stackConfig().redis.url);
  try {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}
