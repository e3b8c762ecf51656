// ctfleet at scale (issue 15): ten thousand ChallengeInstances held by one
// controller, as after a long event (most Stopped), and Redis over a churn.
//   node bench/scale.ts [--instances 10000] [--running 100] [--changes 5] [--churn 3] [--finalizer-policy chart|off]
// Needs the local stack in the environment (hack/bench.sh --scale sets it up).
//
// 1. N instances are created in one namespace before ctfleet runs: `--running`
//    of them Running (containers on the one node), the rest Stopped. With
//    `--finalizer-policy chart` (the default) the chart's finalizer policy is in
//    place, as `helm install` puts it where the API server serves it
//    (bench/lib/finalizer-policy.ts): the instances are created with ctfleet's
//    finalizer, and the first sync writes only their status. `off`: the controller
//    patches each finalizer in too.
// 2. `ctfleet controller` and `ctfleet worker` start from the compiled build. Timed:
//    /readyz (the initial list), then until every instance has its status (each
//    needs its finalizer and a status write: the reconcile rate), with /healthz
//    polled every 100 ms throughout: its slowest answer is the longest pause.
// 3. Held: RSS and V8 heap of both processes; the worker's sweep time.
// 4. `--changes` times, one Stopped instance is patched to Running: timed to its
//    start job (the controller's reconcile) and to its container serving.
// 5. The controller is restarted: its sync of N settled instances, as a relist
//    after a lost watch would do it, timed the same way.
// 6. Redis: keys and memory before, with the instances held, after `--churn`
//    rounds of starting and deleting the running ones, and after all are deleted.
// Every figure is printed next to its target; JSON goes to bench/results/.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { createDockerClient } from '../src/adapters/docker/docker-client.ts';
import { identifyAs, makePooledApiClient } from '../src/adapters/kubernetes/api-client.ts';
import { loadKubeConfig } from '../src/adapters/kubernetes/kube-config.ts';
import { createRedisConnection } from '../src/adapters/redis/redis-connection.ts';
import { loadConnectionConfig } from '../src/config/config.ts';
import { applyFinalizerPolicy, type FinalizerPolicy } from './lib/finalizer-policy.ts';
import { inParallel } from './lib/parallel.ts';
import { freePort, metric, metricBy, rssMb, startProcess, stopProcess, untilReady } from './lib/processes.ts';

const { values } = parseArgs({ options: { instances: { type: 'string', default: '10000' }, running: { type: 'string', default: '100' }, changes: { type: 'string', default: '5' }, churn: { type: 'string', default: '3' }, 'finalizer-policy': { type: 'string', default: 'chart' } } });
const N = Number(values.instances);
const RUNNING = Number(values.running);
const CHANGES = Number(values.changes);
const CHURN = Number(values.churn);
if (!Number.isInteger(N) || N < 1 || N > 20_000) throw new Error('--instances: a whole number from 1 to 20000');
const FINALIZER_POLICY = values['finalizer-policy'];
if (FINALIZER_POLICY !== 'chart' && FINALIZER_POLICY !== 'off') throw new Error('--finalizer-policy: must be chart or off');
if (!Number.isInteger(RUNNING) || RUNNING < 0 || RUNNING + CHANGES > N || RUNNING > 500) throw new Error('--running: a whole number from 0 to 500, leaving --changes Stopped instances');

const ROOT = new URL('..', import.meta.url).pathname;
const IMAGE = 'ctfleet-test/web:1';
const ID = Date.now().toString(36);
const NS = `scale-${ID}`;
const PREFIX = `{ctfleet-scale-${ID}}`;
const config = loadConnectionConfig(process.env);
const kubeConfig = loadKubeConfig(config.kubeconfigPath);
// The benchmark's own requests over kept connections, as ctfleet's are: a client of
// its own for each request would make each of the 10,000 creates a TLS handshake.
const api = makePooledApiClient(kubeConfig, CustomObjectsApi);
const core = makePooledApiClient(kubeConfig, CoreV1Api);
identifyAs('benchmark');
const docker = createDockerClient(config.docker);
const redis = createRedisConnection({ url: config.redis.url, prefix: PREFIX }, 'command');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const GROUP = { group: 'ctfleet.io', version: 'v1alpha1', namespace: NS, plural: 'challengeinstances' } as const;
const name = (i: number): string => `i-${i}`;
const fmt = (value: number, digits = 0): string => (Number.isFinite(value) ? value.toFixed(digits) : '-');
const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');

/**
 * Polls /healthz every 100 ms until stopped; the slowest answer is the longest
 * pause of the process's event loop. Counted from its first answer: loading the
 * modules before the server listens is start-up, not a pause.
 */
function pauseProbe(port: number): { stop: () => Promise<number> } {
  const state = { running: true };
  let slowest = 0;
  const loop = (async () => {
    while (state.running && (await fetch(`http://127.0.0.1:${port}/healthz`).then(() => false, () => true))) await sleep(20);
    while (state.running) {
      const began = performance.now();
      await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(30_000) }).then((response) => response.arrayBuffer(), () => undefined);
      slowest = Math.max(slowest, performance.now() - began);
      await sleep(100);
    }
  })();
  return { stop: async () => { state.running = false; await loop; return slowest; } };
}

/** Keys under the prefix and Redis's whole used memory. */
async function redisFootprint(): Promise<{ keys: number; usedMemoryMb: number }> {
  let keys = 0;
  let cursor = '0';
  do {
    const [nextCursor, batch] = await redis.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000);
    cursor = nextCursor;
    keys += batch.length;
  } while (cursor !== '0');
  const info = await redis.info('memory');
  return { keys, usedMemoryMb: Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN) / 2 ** 20 };
}

/** Instances the controller's cache counts by phase (its own gauge). */
async function phases(port: number): Promise<Map<string, number>> {
  return metricBy(port, 'ctfleet_instances', 'phase');
}

/** Waits until the controller counts `count` instances in `phase`, and its work queue is empty. */
async function untilSettled(port: number, want: Record<string, number>, timeoutMs: number): Promise<number> {
  const began = Date.now();
  for (;;) {
    const counts = await phases(port);
    const depth = await metric(port, 'ctfleet_workqueue_depth');
    if (Object.entries(want).every(([phase, count]) => (counts.get(phase) ?? 0) === count) && depth === 0) return Date.now() - began;
    if (Date.now() - began > timeoutMs) throw new Error(`not settled within ${timeoutMs} ms: ${JSON.stringify(Object.fromEntries(counts))}, queue ${depth}`);
    await sleep(250);
  }
}

const spec = (i: number, desiredState: 'Running' | 'Stopped'): Record<string, unknown> => ({
  team: `team-${i}`, challenge: 'web-101', image: IMAGE, imagePullPolicy: 'Never', desiredState,
  ports: [{ name: 'http', containerPort: 8080 }], resources: { cpu: '50m', memory: '32Mi', pids: 32 },
});

const processes: ChildProcess[] = [];
const result: Record<string, unknown> = { instances: N, running: RUNNING, startedAt: new Date().toISOString() };
const env: Record<string, string> = {
  CTFLEET_REDIS_PREFIX: PREFIX, CTFLEET_NAMESPACES: NS, CTFLEET_NODE_NAME: 'scale-node', CTFLEET_BIND_ADDRESS: '127.0.0.1',
  CTFLEET_PORT_RANGE: '22000-23999', CTFLEET_LOG_LEVEL: 'warn', CTFLEET_ALLOWED_IMAGES: IMAGE,
};
let controller: ChildProcess | undefined;
let worker: ChildProcess | undefined;
let policy: FinalizerPolicy | undefined;
try {
  policy = FINALIZER_POLICY === 'chart' ? await applyFinalizerPolicy(`scale-${ID}`) : undefined;
  const finalizerPolicy = policy?.version ?? 'none';
  result.finalizerPolicy = finalizerPolicy;
  console.log(`ctfleet scale benchmark: ${N} instances (${RUNNING} Running, the rest Stopped) in ${NS}, the chart's finalizer policy: ${finalizerPolicy}, ${new Date().toISOString()}`);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  const redisBefore = await redisFootprint();

  // 1. The instances, before ctfleet runs.
  let began = Date.now();
  await inParallel(N, 32, async (i) => {
    await api.createNamespacedCustomObject({ ...GROUP, body: { apiVersion: 'ctfleet.io/v1alpha1', kind: 'ChallengeInstance', metadata: { name: name(i) }, spec: spec(i, i < RUNNING ? 'Running' : 'Stopped') } });
  });
  console.log(`created ${N} instances in ${fmt((Date.now() - began) / 1000, 1)} s`);

  // 2. ctfleet starts and takes them over.
  const [controllerPort, workerPort] = [await freePort(), await freePort()];
  began = Date.now();
  worker = startProcess('worker', env, workerPort);
  controller = startProcess('controller', env, controllerPort);
  processes.push(worker, controller);
  const probe = pauseProbe(controllerPort);
  const readyMs = await untilReady(controllerPort, began);
  await untilReady(workerPort, began);
  const firstSyncMs = readyMs + (await untilSettled(controllerPort, { Running: RUNNING, Stopped: N - RUNNING }, 1_800_000));
  const firstPauseMs = await probe.stop();
  const reconciles = await metric(controllerPort, 'ctfleet_reconcile_total');
  console.log(`first sync: /readyz after ${fmt(readyMs)} ms (initial list of ${N}); every instance with its finalizer and status after ${fmt(firstSyncMs / 1000, 1)} s (${fmt(reconciles)} reconciles, ${fmt(reconciles / (firstSyncMs / 1000), 1)}/s); longest pause ${fmt(firstPauseMs)} ms`);

  // 3. Held: memory after a quiet spell, the worker's sweep.
  await sleep(35_000);
  const held = {
    controllerRssMb: rssMb(controller.pid), workerRssMb: rssMb(worker.pid),
    controllerHeapMb: (await metric(controllerPort, 'ctfleet_nodejs_heap_size_used_bytes')) / 2 ** 20,
    workerHeapMb: (await metric(workerPort, 'ctfleet_nodejs_heap_size_used_bytes')) / 2 ** 20,
    controllerHeapTotalMb: (await metric(controllerPort, 'ctfleet_nodejs_heap_size_total_bytes')) / 2 ** 20,
    controllerExternalMb: (await metric(controllerPort, 'ctfleet_nodejs_external_memory_bytes')) / 2 ** 20,
    sweepMeanMs: ((await metric(workerPort, 'ctfleet_sweep_duration_seconds_sum')) / (await metric(workerPort, 'ctfleet_sweep_duration_seconds_count'))) * 1000,
    sweeps: await metric(workerPort, 'ctfleet_sweep_duration_seconds_count'),
  };
  const redisHeld = await redisFootprint();
  console.log(`held: controller RSS ${fmt(held.controllerRssMb, 1)} MB (heap used ${fmt(held.controllerHeapMb, 1)} of ${fmt(held.controllerHeapTotalMb, 1)} MB, external ${fmt(held.controllerExternalMb, 1)} MB), worker RSS ${fmt(held.workerRssMb, 1)} MB (heap ${fmt(held.workerHeapMb, 1)} MB), sweep ${fmt(held.sweepMeanMs)} ms mean over ${fmt(held.sweeps)}`);

  // 4. One change at a time while holding them all.
  const changes: { toJobMs: number; toServingMs: number }[] = [];
  for (let c = 0; c < CHANGES; c += 1) {
    const target = name(N - 1 - c);
    const changed = Date.now();
    await api.patchNamespacedCustomObject({ ...GROUP, name: target, body: { spec: { desiredState: 'Running' } } }, MERGE);
    let toJobMs = Number.NaN;
    for (;;) {
      const object = (await api.getNamespacedCustomObject({ ...GROUP, name: target })) as { metadata: { uid: string }; status?: { conditions?: { type: string; status: string; observedGeneration?: number }[] } };
      if (Number.isNaN(toJobMs)) {
        const timestamp = await redis.hget(`${PREFIX}:start:${object.metadata.uid}.2.start`, 'timestamp');
        if (timestamp !== null) toJobMs = Number(timestamp) - changed;
      }
      if (object.status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True' && condition.observedGeneration === 2) === true) break;
      if (Date.now() - changed > 60_000) throw new Error(`${target} did not run within 60 s of its change`);
      await sleep(10);
    }
    changes.push({ toJobMs, toServingMs: Date.now() - changed });
  }
  const worstJobMs = Math.max(...changes.map((change) => change.toJobMs));
  console.log(`single changes: to the start job ${changes.map((change) => fmt(change.toJobMs)).join(', ')} ms; to the container serving ${changes.map((change) => fmt(change.toServingMs)).join(', ')} ms`);

  // 5. The controller again, as after a restart or a relist: N settled instances.
  await stopProcess(controller);
  began = Date.now();
  controller = startProcess('controller', env, controllerPort);
  processes.push(controller);
  const probeAgain = pauseProbe(controllerPort);
  const readyAgainMs = await untilReady(controllerPort, began);
  const resyncMs = readyAgainMs + (await untilSettled(controllerPort, { Running: RUNNING + CHANGES, Stopped: N - RUNNING - CHANGES }, 600_000));
  const resyncPauseMs = await probeAgain.stop();
  const resyncRssMb = rssMb(controller.pid);
  console.log(`restart: /readyz after ${fmt(readyAgainMs)} ms; queue drained after ${fmt(resyncMs / 1000, 1)} s; longest pause ${fmt(resyncPauseMs)} ms; RSS ${fmt(resyncRssMb, 1)} MB`);

  // 6. Redis over a churn: the running instances stopped and started again.
  for (let round = 0; round < CHURN; round += 1) {
    for (const desiredState of ['Stopped', 'Running'] as const) {
      await inParallel(RUNNING, 16, async (i) => {
        await api.patchNamespacedCustomObject({ ...GROUP, name: name(i), body: { spec: { desiredState } } }, MERGE);
      });
      await untilSettled(controllerPort, desiredState === 'Stopped' ? { Running: CHANGES, Stopped: N - CHANGES } : { Running: RUNNING + CHANGES, Stopped: N - RUNNING - CHANGES }, 600_000);
    }
  }
  const redisChurned = await redisFootprint();
  const jobs = await metricBy(workerPort, 'ctfleet_jobs_total', 'action');
  console.log(`redis: before ${redisBefore.keys} keys / ${fmt(redisBefore.usedMemoryMb, 1)} MB; holding ${redisHeld.keys} / ${fmt(redisHeld.usedMemoryMb, 1)} MB; after ${CHURN} churn rounds of ${RUNNING} (${JSON.stringify(Object.fromEntries(jobs))} jobs) ${redisChurned.keys} / ${fmt(redisChurned.usedMemoryMb, 1)} MB`);

  // 7. Everything deleted: what Redis keeps afterwards.
  began = Date.now();
  // One by one (a deletecollection of thousands outlives the request's timeout).
  await inParallel(N, 32, async (i) => {
    await api.deleteNamespacedCustomObject({ ...GROUP, name: name(i) });
  });
  for (;;) {
    const left = (await api.listNamespacedCustomObject({ ...GROUP, limit: 1 })) as { items: unknown[] };
    if (left.items.length === 0) break;
    if (Date.now() - began > 1_800_000) throw new Error('instances left 30 min after the delete');
    await sleep(500);
  }
  const deleteMs = Date.now() - began;
  const redisAfter = await redisFootprint();
  console.log(`deleted all ${N} in ${fmt(deleteMs / 1000, 1)} s; redis ${redisAfter.keys} keys / ${fmt(redisAfter.usedMemoryMb, 1)} MB`);

  Object.assign(result, { firstSync: { readyMs, settledMs: firstSyncMs, reconciles, longestPauseMs: firstPauseMs }, held, changes, resync: { readyMs: readyAgainMs, settledMs: resyncMs, longestPauseMs: resyncPauseMs, rssMb: resyncRssMb }, redis: { before: redisBefore, held: redisHeld, churned: redisChurned, after: redisAfter, jobs: Object.fromEntries(jobs) }, deleteMs });
  console.log();
  console.log(`controller RSS holding ${N}              ${fmt(held.controllerRssMb, 1)} MB  (target ≤ 200 MB: ${verdict(held.controllerRssMb <= 200)})`);
  console.log(`a single change reconciled (to its job)   ${fmt(worstJobMs)} ms worst of ${CHANGES}  (target ≤ 1000 ms: ${verdict(worstJobMs <= 1000)})`);
  console.log(`longest pause, first sync / resync        ${fmt(firstPauseMs)} / ${fmt(resyncPauseMs)} ms  (target ≤ 2000 ms: ${verdict(Math.max(firstPauseMs, resyncPauseMs) <= 2000)})`);
} finally {
  for (const child of processes) await stopProcess(child);
  const left = await docker.listContainers({ all: true, filters: { label: [`ctfleet.io/namespace=${NS}`] } });
  await Promise.all(left.map((container) => docker.getContainer(container.Id).remove({ force: true }).catch(() => undefined)));
  // Whatever still holds ctfleet's finalizer (a failed run): released, so the namespace goes.
  const listed = execFileSync('kubectl', ['get', 'challengeinstances', '-n', NS, '-o', 'name'], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 }).split('\n').filter((line) => line !== '');
  await inParallel(listed.length, 16, async (i) => {
    await api.patchNamespacedCustomObject({ ...GROUP, name: listed[i]?.split('/')[1] ?? '', body: { metadata: { finalizers: null } } }, MERGE).catch(() => undefined);
  });
  await core.deleteNamespace({ name: NS }).catch(() => undefined);
  await policy?.remove();
  const keys = await redis.keys(`${PREFIX}*`);
  for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
  redis.disconnect();
}
const file = join(ROOT, 'bench/results', `scale-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
console.log(`\nwrote ${file}`);
process.exit(0);
