// ctfleet start/teardown benchmark against a plain-dockerode baseline.
//   node bench/run.ts [--instances N] [--concurrency C]
// Needs the local stack in the environment (hack/bench.sh sets it up).
//
// (a) ctfleet: `ctfleet controller` and `ctfleet worker` run as two processes. N
//     ChallengeInstances are created at once; each is timed from its create call to
//     status Running with Ready=True. Then all are deleted and the run is timed until
//     every container is gone. Peak RSS is each process's VmHWM.
// (b) baseline: dockerode creates and starts the same N containers directly, C at a
//     time, with the same image, port mapping, limits and readiness check (a TCP
//     connect to the container), then removes them, C at a time.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi, makeInformer, type KubernetesObject } from '@kubernetes/client-node';
import { createDockerClient } from '../src/adapters/docker/docker-client.ts';
import { loadKubeConfig } from '../src/adapters/kubernetes/kube-config.ts';
import { createRedisConnection } from '../src/adapters/redis/redis-connection.ts';
import { formatTable } from '../src/cli/output.ts';
import { PRODUCTION_NODE_FLAGS } from '../src/app/node-flags.ts';
import { canConnect } from '../src/worker/readiness.ts';
import { loadConnectionConfig } from '../src/config/config.ts';

const { values } = parseArgs({ options: { instances: { type: 'string', default: '50' }, concurrency: { type: 'string', default: '16' }, repeat: { type: 'string', default: '1' } } });
const N = Number(values.instances);
const C = Number(values.concurrency);
const R = Number(values.repeat);
if (!Number.isInteger(R) || R < 1 || R > 20) throw new Error('--repeat: must be an integer from 1 to 20');
if (!Number.isInteger(N) || N < 1 || N > 2000) throw new Error('--instances: must be an integer from 1 to 2000');
if (!Number.isInteger(C) || C < 1 || C > 256) throw new Error('--concurrency: must be an integer from 1 to 256');

const ROOT = new URL('..', import.meta.url).pathname;
const IMAGE = 'ctfleet-test/web:1';
const LIMITS = { NanoCpus: 250_000_000, Memory: 64 * 2 ** 20, MemorySwap: 64 * 2 ** 20, PidsLimit: 64 };
const config = loadConnectionConfig(process.env);
const kubeConfig = loadKubeConfig(config.kubeconfigPath);
const docker = createDockerClient(config.docker);
let run = Date.now().toString(36);
let NS = `bench-${run}`;
let PREFIX = `{ctfleet-bench-${run}}`;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

interface Summary {
  p50: number;
  p95: number;
  max: number;
  wallMs: number;
  perSecond: number;
}

function summarise(latencies: number[], wallMs: number): Summary {
  const sorted = [...latencies].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: sorted.at(-1) ?? Number.NaN, wallMs, perSecond: (latencies.length / wallMs) * 1000 };
}

async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        await work(item);
      }
    }),
  );
}

/**
 * dockerode alone. `perInstanceNetwork`: each container on a bridge network of
 * its own (explicit /28 subnet, inter-container traffic off), created before it
 * and removed after it: the design ctfleet measured against one shared bridge
 * per egress class (docs/security.md).
 */
async function baseline(perInstanceNetwork = false): Promise<{ start: Summary; teardownMs: number }> {
  const ids: { container: string; network?: string }[] = [];
  const latencies: number[] = [];
  const began = Date.now();
  const tag = perInstanceNetwork ? 'net' : 'base';
  await pool(
    Array.from({ length: N }, (_, i) => i),
    C,
    async (i) => {
      const t0 = Date.now();
      let network: string | undefined;
      if (perInstanceNetwork) {
        const created = await docker.createNetwork({
          Name: `ctfleet-bench-${tag}-${run}-${i}`,
          Driver: 'bridge',
          IPAM: { Driver: 'default', Config: [{ Subnet: `10.199.${Math.floor(i / 16)}.${(i % 16) * 16}/28` }] },
          Options: { 'com.docker.network.bridge.enable_icc': 'false' },
          Labels: { 'ctfleet.io/bench': run },
        });
        network = created.id;
      }
      const container = await docker.createContainer({
        name: `ctfleet-bench-${tag}-${run}-${i}`,
        Image: IMAGE,
        Env: [`GREETING=baseline-${i}`],
        ExposedPorts: { '8080/tcp': {} },
        Labels: { 'ctfleet.io/bench': run },
        HostConfig: { PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: String(33000 + i) }] }, ...LIMITS, ...(network === undefined ? {} : { NetworkMode: network }) },
      });
      await container.start();
      const ip = Object.values((await container.inspect()).NetworkSettings.Networks)[0]?.IPAddress ?? '127.0.0.1';
      while (!(await canConnect(ip, 8080, 500))) await sleep(150);
      latencies.push(Date.now() - t0);
      ids.push({ container: container.id, ...(network === undefined ? {} : { network }) });
    },
  );
  const start = summarise(latencies, Date.now() - began);
  const removeStart = Date.now();
  await pool(ids, C, async ({ container, network }) => {
    await docker.getContainer(container).remove({ force: true });
    if (network !== undefined) await docker.getNetwork(network).remove();
  });
  return { start, teardownMs: Date.now() - removeStart };
}

/** A port nothing listens on now, for a process's /readyz. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs the compiled build with the V8 flags the bin and the image use, as deployed; `port` serves its /readyz. */
function startProcess(role: 'controller' | 'worker', env: Record<string, string>, port: number): ChildProcess {
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  return spawn(process.execPath, [...PRODUCTION_NODE_FLAGS, join(ROOT, 'dist/main.js'), role], { env: { ...process.env, ...env, CTFLEET_HTTP_PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * Waits until /readyz on `port` answers 200: the clock of a round starts once
 * ctfleet is ready (a worker installs its firewall rules and networks first), so
 * start-up is not counted as the first instances' latency. Returns how long it took.
 */
async function untilReady(port: number, began: number): Promise<number> {
  for (;;) {
    const status = await fetch(`http://127.0.0.1:${port}/readyz`).then((response) => response.status, () => 0);
    if (status === 200) return Date.now() - began;
    if (Date.now() - began > 120_000) throw new Error(`ctfleet on port ${port} was not ready within 120 s (last status ${status})`);
    await sleep(50);
  }
}

function peakRssMb(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
}

async function ctfleet(): Promise<{ start: Summary; teardownMs: number; rssMb: Record<string, number> }> {
  const env = {
    CTFLEET_REDIS_PREFIX: PREFIX,
    CTFLEET_NAMESPACES: NS,
    CTFLEET_NODE_NAME: 'bench-node',
    CTFLEET_BIND_ADDRESS: '127.0.0.1',
    CTFLEET_PORT_RANGE: '34000-34999',
    CTFLEET_WORKER_CONCURRENCY: String(C),
    CTFLEET_CONTROLLER_CONCURRENCY: String(C),
    CTFLEET_LOG_LEVEL: 'warn',
    CTFLEET_ALLOWED_IMAGES: IMAGE,
  };
  const [controllerPort, workerPort] = [await freePort(), await freePort()];
  const launched = Date.now();
  const controller = startProcess('controller', env, controllerPort);
  const worker = startProcess('worker', env, workerPort);
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  await kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });

  const created = new Map<string, number>();
  const ready = new Map<string, number>();
  const informer = makeInformer<KubernetesObject>(kubeConfig, `/apis/ctfleet.io/v1alpha1/namespaces/${NS}/challengeinstances`, async () =>
    (await api.listNamespacedCustomObject({ group: 'ctfleet.io', version: 'v1alpha1', namespace: NS, plural: 'challengeinstances' })) as { items: KubernetesObject[]; metadata: { resourceVersion: string } },
  );
  const observe = (object: KubernetesObject): void => {
    const item = object as KubernetesObject & { status?: { phase?: string; conditions?: { type: string; status: string }[] } };
    const name = item.metadata?.name ?? '';
    if (!ready.has(name) && item.status?.phase === 'Running' && item.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) ready.set(name, Date.now());
  };
  informer.on('add', observe);
  informer.on('update', observe);
  await informer.start();
  const [controllerReadyMs, workerReadyMs] = await Promise.all([untilReady(controllerPort, launched), untilReady(workerPort, launched)]);
  console.log(`ctfleet ready ${controllerReadyMs} ms (controller) and ${workerReadyMs} ms (worker) after launch; the round's clock starts now`);

  const names = Array.from({ length: N }, (_, i) => `bench-${i}`);
  const began = Date.now();
  await Promise.all(
    names.map(async (name, i) => {
      created.set(name, Date.now());
      await api.createNamespacedCustomObject({
        group: 'ctfleet.io',
        version: 'v1alpha1',
        namespace: NS,
        plural: 'challengeinstances',
        body: {
          apiVersion: 'ctfleet.io/v1alpha1',
          kind: 'ChallengeInstance',
          metadata: { name },
          spec: { team: `team-${i}`, challenge: 'web-101', image: IMAGE, imagePullPolicy: 'Never', ports: [{ name: 'http', containerPort: 8080 }], env: [{ name: 'GREETING', value: `bench-${i}` }], resources: { cpu: '250m', memory: '64Mi', pids: 64 } },
        },
      });
    }),
  );
  const deadline = Date.now() + 300_000;
  while (ready.size < N && Date.now() < deadline) await sleep(20);
  if (ready.size < N) throw new Error(`only ${ready.size} of ${N} instances became ready within 300 s`);
  const latencies = names.map((name) => (ready.get(name) ?? Number.NaN) - (created.get(name) ?? Number.NaN));
  const start = summarise(latencies, Math.max(...ready.values()) - began);

  const teardownBegan = Date.now();
  await Promise.all(names.map((name) => api.deleteNamespacedCustomObject({ group: 'ctfleet.io', version: 'v1alpha1', namespace: NS, plural: 'challengeinstances', name })));
  for (;;) {
    const left = await docker.listContainers({ all: true, filters: { label: [`ctfleet.io/namespace=${NS}`] } });
    if (left.length === 0) break;
    if (Date.now() - teardownBegan > 300_000) throw new Error(`${left.length} containers left after 300 s`);
    await sleep(20);
  }
  const teardownMs = Date.now() - teardownBegan;
  const rssMb = { controller: peakRssMb(controller.pid), worker: peakRssMb(worker.pid) };

  await informer.stop();
  for (const child of [controller, worker]) child.kill('SIGTERM');
  await Promise.all([controller, worker].map((child) => new Promise((resolve) => child.once('exit', resolve))));
  await kubeConfig.makeApiClient(CoreV1Api).deleteNamespace({ name: NS });
  const redis = createRedisConnection({ url: config.redis.url, prefix: PREFIX }, 'command');
  const keys = await redis.keys(`${PREFIX}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
  return { start, teardownMs, rssMb };
}

const fmt = (value: number, digits = 0): string => (Number.isFinite(value) ? value.toFixed(digits) : '-');
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
};

interface Round {
  baseline: Awaited<ReturnType<typeof baseline>>;
  perInstanceNetwork: Awaited<ReturnType<typeof baseline>>;
  ctfleet: Awaited<ReturnType<typeof ctfleet>>;
  ratios: { startThroughput: number; teardownThroughput: number; p50AddedLatencyMs: number };
}

console.log(`ctfleet benchmark: ${N} instances of ${IMAGE}, concurrency ${C}, ${R} round(s), ${new Date().toISOString()}`);
const rounds: Round[] = [];
for (let round = 1; round <= R; round += 1) {
  run = `${Date.now().toString(36)}r${round}`;
  NS = `bench-${run}`;
  PREFIX = `{ctfleet-bench-${run}}`;
  const base = await baseline();
  const networked = await baseline(true);
  const fleet = await ctfleet();
  const ratios = {
    startThroughput: fleet.start.perSecond / base.start.perSecond,
    teardownThroughput: base.teardownMs / fleet.teardownMs,
    p50AddedLatencyMs: fleet.start.p50 - base.start.p50,
  };
  rounds.push({ baseline: base, perInstanceNetwork: networked, ctfleet: fleet, ratios });
  console.log();
  console.log(`round ${round}/${R}`);
  console.log(
    formatTable(
      ['', 'start p50 ms', 'p95 ms', 'max ms', 'started/s', 'teardown s', 'removed/s'],
      [
        ['baseline (dockerode)', fmt(base.start.p50), fmt(base.start.p95), fmt(base.start.max), fmt(base.start.perSecond, 2), fmt(base.teardownMs / 1000, 2), fmt((N / base.teardownMs) * 1000, 2)],
        ['dockerode, network per container', fmt(networked.start.p50), fmt(networked.start.p95), fmt(networked.start.max), fmt(networked.start.perSecond, 2), fmt(networked.teardownMs / 1000, 2), fmt((N / networked.teardownMs) * 1000, 2)],
        ['ctfleet', fmt(fleet.start.p50), fmt(fleet.start.p95), fmt(fleet.start.max), fmt(fleet.start.perSecond, 2), fmt(fleet.teardownMs / 1000, 2), fmt((N / fleet.teardownMs) * 1000, 2)],
      ],
    ),
  );
  console.log(`a network per container costs dockerode: start throughput ×${fmt(networked.start.perSecond / base.start.perSecond, 2)}, teardown ×${fmt(base.teardownMs / networked.teardownMs, 2)}`);
  console.log(`ratios: start ${fmt(ratios.startThroughput, 2)}, teardown ${fmt(ratios.teardownThroughput, 2)}; p50 added ${fmt(ratios.p50AddedLatencyMs)} ms; peak RSS controller ${fmt(fleet.rssMb.controller ?? Number.NaN, 1)} MB, worker ${fmt(fleet.rssMb.worker ?? Number.NaN, 1)} MB`);
}

const summary = {
  startThroughput: median(rounds.map((r) => r.ratios.startThroughput)),
  teardownThroughput: median(rounds.map((r) => r.ratios.teardownThroughput)),
  p50AddedLatencyMs: median(rounds.map((r) => r.ratios.p50AddedLatencyMs)),
  peakRssMb: {
    controller: Math.max(...rounds.map((r) => r.ctfleet.rssMb.controller ?? Number.NaN)),
    worker: Math.max(...rounds.map((r) => r.ctfleet.rssMb.worker ?? Number.NaN)),
  },
};
const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
console.log();
console.log(`summary over ${R} round(s): medians of the ratios, highest peak RSS`);
console.log(`start throughput ratio ctfleet/baseline   ${fmt(summary.startThroughput, 2)}  (target ≥ 0.9: ${verdict(summary.startThroughput >= 0.9)})`);
console.log(`teardown throughput ratio                 ${fmt(summary.teardownThroughput, 2)}  (target ≥ 0.9: ${verdict(summary.teardownThroughput >= 0.9)})`);
console.log(`p50 added latency over baseline           ${fmt(summary.p50AddedLatencyMs)} ms  (target ≤ 150 ms: ${verdict(summary.p50AddedLatencyMs <= 150)})`);
for (const [name, mb] of Object.entries(summary.peakRssMb)) {
  console.log(`peak RSS ctfleet ${name.padEnd(10)}               ${fmt(mb, 1)} MB  (target ≤ 150 MB: ${verdict(mb <= 150)})`);
}
const file = join(ROOT, 'bench/results', `start-teardown-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify({ instances: N, concurrency: C, image: IMAGE, rounds, summary }, null, 2)}\n`);
console.log(`\nwrote ${file}`);
// Docker's keep-alive agent would hold the process open.
process.exit(0);
