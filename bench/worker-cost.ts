// What each step of a start costs the worker's own process, in CPU: N calls of
// one step at a time, 16 at once as the worker runs them, through ctfleet's own
// adapters against the local stack, with this process's user + system time and
// its garbage collection read before and after. Run with the worker's V8 flags
// (`npm run bench:worker-cost` passes them), the sum of the rows is what a start
// would cost the worker if nothing else ran; the benchmark's "ctfleet worker" row
// (npm run bench) is what it did cost, sweeps, heartbeats and timers included.
//   node --max-semi-space-size=1 --optimize-for-size bench/worker-cost.ts [--calls N]
// Needs the local stack in the environment and the test image
// ctfleet-test/web:1 (`bash hack/stack.sh up`).
import { randomUUID } from 'node:crypto';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { createDockerClient } from '../src/adapters/docker/docker-client.ts';
import { DockerRuntime } from '../src/adapters/docker/container-runtime.ts';
import { makePooledApiClient } from '../src/adapters/kubernetes/api-client.ts';
import { KubeInstanceApi } from '../src/adapters/kubernetes/instance-api.ts';
import { loadKubeConfig } from '../src/adapters/kubernetes/kube-config.ts';
import { BullWorkerPool } from '../src/adapters/queue/bullmq-worker.ts';
import { createRedisConnection } from '../src/adapters/redis/redis-connection.ts';
import { RedisObservedStateStore } from '../src/adapters/redis/observed-state-store.ts';
import { formatTable } from '../src/cli/output.ts';
import { loadConnectionConfig } from '../src/config/config.ts';
import type { ChallengeInstance } from '../src/domain/challenge-instance.ts';
import { API_VERSION, FIELD_MANAGERS, GROUP, LABELS, VERSION } from '../src/domain/names.ts';
import type { ContainerDefinition } from '../src/domain/ports.ts';
import { createLogger } from '../src/observability/logger.ts';
import { canConnect } from '../src/worker/readiness.ts';
import { inParallel } from './lib/parallel.ts';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '300' } } });
const N = Number(values.calls);
if (!Number.isInteger(N) || N < 16 || N > 5000) throw new Error('--calls: must be an integer from 16 to 5000');
const CONCURRENCY = 16;
const IMAGE = 'ctfleet-test/web:1';

const config = loadConnectionConfig(process.env);
const kubeConfig = loadKubeConfig(config.kubeconfigPath);
const core = makePooledApiClient(kubeConfig, CoreV1Api);
const custom = makePooledApiClient(kubeConfig, CustomObjectsApi);
const instances = new KubeInstanceApi(kubeConfig);
const docker = createDockerClient(config.docker, { idleTimeoutMs: 60_000 });
const runtime = new DockerRuntime(docker, createDockerClient(config.docker));
const run = Date.now().toString(36);
const NS = `worker-cost-${run}`;
const PREFIX = `{ctfleet-worker-cost-${run}}`;
const redis = createRedisConnection({ url: config.redis.url, prefix: PREFIX }, 'command');
const observed = new RedisObservedStateStore(redis, PREFIX);

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMs += entry.duration;
}).observe({ entryTypes: ['gc'] });

const rows: { step: string; cpuMs: number; gcMs: number; perStart: number }[] = [];
/** Runs `work` N times, 16 at once, and records its CPU and GC per call; `perStart`: calls of it a start makes. */
async function measure(step: string, perStart: number, work: (i: number) => Promise<unknown>, count = N): Promise<void> {
  // A few calls first: V8 compiles the path once, as a long-running worker has.
  await inParallel(CONCURRENCY, CONCURRENCY, work);
  await new Promise((resolve) => setTimeout(resolve, 200));
  const gcBefore = gcMs;
  const before = process.cpuUsage();
  await inParallel(count, CONCURRENCY, work);
  const used = process.cpuUsage(before);
  const row = { step, cpuMs: (used.user + used.system) / 1000 / count, gcMs: (gcMs - gcBefore) / count, perStart };
  rows.push(row);
  console.log(`${step}: ${row.cpuMs.toFixed(2)} ms CPU a call (GC ${row.gcMs.toFixed(2)} ms)`);
}

const created: string[] = [];
try {
  await core.createNamespace({ body: { metadata: { name: NS } } });
  const body = {
    apiVersion: API_VERSION, kind: 'ChallengeInstance', metadata: { name: 'cost' },
    spec: { team: 'team-1', challenge: 'web-101', image: IMAGE, imagePullPolicy: 'Never', ports: [{ name: 'http', containerPort: 8080 }], env: [{ name: 'GREETING', value: 'cost' }], resources: { cpu: '250m', memory: '64Mi', pids: 64 } },
  };
  await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'challengeinstances', body });
  const instance = (await instances.get(NS, 'cost')) as ChallengeInstance;
  // The status a started instance carries (the controller's and the worker's fields), so the read is of its real size.
  await instances.applyStatus(instance, FIELD_MANAGERS.controller, { phase: 'Running', node: 'cost-node', lastJob: { id: `start:${instance.metadata.uid}.1.start`, action: 'start', queue: 'node-cost-node' }, expiresAt: new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z') });
  const readyStatus = (i: number) => ({
    node: 'cost-node',
    containerId: `${i}`.padStart(64, 'a'),
    endpoints: [{ name: 'http', protocol: 'TCP' as const, host: '127.0.0.1', port: 28_000 + (i % 1000) }],
    startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    conditions: [{ type: 'Ready', status: 'True' as const, reason: 'ContainerReady', message: 'Container is ready on node cost-node.', observedGeneration: 1, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }],
  });
  await instances.applyStatus(instance, FIELD_MANAGERS.worker, readyStatus(0));
  const size = JSON.stringify(await instances.get(NS, 'cost')).length;
  console.log(`worker cost: ${N} calls of each step, ${CONCURRENCY} at once; the instance read is ${size} bytes of JSON`);

  await measure('read the instance (GET)', 1, () => instances.get(NS, 'cost'));
  await measure('status write (server-side apply)', 1, (i) => instances.applyStatus(instance, FIELD_MANAGERS.worker, readyStatus(i)));
  await measure('observed state (Redis MULTI)', 1, (i) => observed.record(`uid-${i % 64}`, { namespace: NS, name: 'cost', node: 'cost-node', state: 'running', reason: 'ContainerReady', generation: 1, containerId: 'c'.repeat(64), endpoints: [{ name: 'http', protocol: 'TCP', host: '127.0.0.1', port: 28_000 }] }));
  await measure('inspect a missing name', 1, (i) => runtime.find(`ctfleet-cost-missing-${i}`));

  // Containers as the worker makes them: create + start, inspect, a connect, remove.
  const definition = (i: number): ContainerDefinition => ({
    name: `ctfleet-cost-${run}-${i}-${randomUUID().slice(0, 8)}`, image: IMAGE, env: ['GREETING=cost'],
    labels: { [LABELS.namespace]: NS, [LABELS.name]: `cost-${i}`, [LABELS.uid]: randomUUID(), [LABELS.node]: 'cost-node' },
    bindAddress: '127.0.0.1', ports: [{ containerPort: 8080, hostPort: 0, protocol: 'TCP' }], nanoCpus: 250_000_000, memoryBytes: 64 * 1024 * 1024, pidsLimit: 64,
    capabilities: [], nofile: 1024, log: { maxSize: '1m', maxFiles: 1 }, readOnlyRootFilesystem: false, tmpfs: [{ path: '/tmp', sizeBytes: 16 * 1024 * 1024 }],
    network: 'bridge', dns: [], files: [],
  });
  const ids: string[] = [];
  await measure('create + start', 1, async (i) => {
    const container = await runtime.createAndStart(definition(i));
    created.push(container.id);
    ids.push(container.id);
  }, Math.min(N, 100));
  await measure('inspect a container', 1, (i) => runtime.find(ids[i % ids.length] ?? ''));
  const addresses = await Promise.all(ids.slice(0, 16).map(async (id) => (await runtime.find(id))?.ipAddress ?? '127.0.0.1'));
  await measure('readiness connect', 1, (i) => canConnect(addresses[i % addresses.length] ?? '127.0.0.1', 8080, 500));
  await measure('remove', 0, async () => {
    const id = ids.pop();
    if (id !== undefined) await runtime.remove(id);
  }, Math.max(16, ids.length - CONCURRENCY));

  // A job's life in the worker: taken, three progress steps, completed.
  const queueName = 'cost';
  const producer = new Queue(queueName, { connection: redis.duplicate(), prefix: PREFIX });
  const total = N + CONCURRENCY;
  await producer.addBulk(Array.from({ length: total }, (_, i) => ({ name: 'start', data: { i }, opts: { jobId: `job-${i}`, removeOnComplete: { age: 3_600, count: 10_000 } } })));
  const consumer = new BullWorkerPool(createRedisConnection({ url: config.redis.url, prefix: PREFIX }, 'blocking'), PREFIX, createLogger('bench', 'error'));
  let done = 0;
  let allDone: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    allDone = resolve;
  });
  let gcBefore = 0;
  let before = process.cpuUsage();
  consumer.consume(queueName, CONCURRENCY, async (_data, context) => {
    context.progress(10, 'creating container');
    await new Promise((resolve) => setTimeout(resolve, 300));
    context.progress(60, 'started');
    await new Promise((resolve) => setTimeout(resolve, 300));
    context.progress(100, 'ready');
    done += 1;
    // The first 16 warm the path: the clock starts after them.
    if (done === CONCURRENCY) {
      gcBefore = gcMs;
      before = process.cpuUsage();
    }
    if (done === total) setTimeout(allDone, 200);
    return { outcome: 'started', containerId: 'c'.repeat(64), endpoints: [], timeline: { pass: 0 } };
  });
  await finished;
  const used = process.cpuUsage(before);
  await consumer.close(5_000);
  await producer.close();
  const jobRow = { step: 'a job: taken, 3 progress steps, completed (BullMQ)', cpuMs: (used.user + used.system) / 1000 / N, gcMs: (gcMs - gcBefore) / N, perStart: 1 };
  rows.push(jobRow);
  console.log(`${jobRow.step}: ${jobRow.cpuMs.toFixed(2)} ms CPU a job (GC ${jobRow.gcMs.toFixed(2)} ms; the 200 ms wait at the end included)`);

  console.log(formatTable(['step', 'CPU ms a call', 'of it GC', 'calls a start', 'ms a start'], [
    ...rows.map((row) => [row.step, row.cpuMs.toFixed(2), row.gcMs.toFixed(2), String(row.perStart), (row.cpuMs * row.perStart).toFixed(2)]),
    ['sum', '', '', '', rows.reduce((sum, row) => sum + row.cpuMs * row.perStart, 0).toFixed(2)],
  ]));
} finally {
  await Promise.all(created.map((id) => docker.getContainer(id).remove({ force: true }).catch(() => undefined)));
  await core.deleteNamespace({ name: NS }).catch(() => undefined);
  const keys = await redis.keys(`${PREFIX}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
}
// The Docker and Kubernetes clients keep their connections open for a minute: done is done.
process.exit(0);
