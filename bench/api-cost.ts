// What each kind of Kubernetes request ctfleet makes for a start costs the API
// server and etcd, in CPU: N requests of one kind against N ChallengeInstances
// (no controller or worker running), the two processes' user + system time read
// from /proc before and after. With --watchers W, W watches of the instances run
// meanwhile, as the controller's informer and a platform's would: every write is
// sent to each.
//   node bench/api-cost.ts [--instances N] [--watchers W]
// Needs the local stack in the environment (`npm run bench:api-cost` sets it up).
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, Watch } from '@kubernetes/client-node';
import { makePooledApiClient } from '../src/adapters/kubernetes/api-client.ts';
import { KubeInstanceApi } from '../src/adapters/kubernetes/instance-api.ts';
import { loadKubeConfig } from '../src/adapters/kubernetes/kube-config.ts';
import { formatTable } from '../src/cli/output.ts';
import { loadConnectionConfig } from '../src/config/config.ts';
import type { ChallengeInstance } from '../src/domain/challenge-instance.ts';
import { API_VERSION, FIELD_MANAGERS, GROUP, VERSION } from '../src/domain/names.ts';
import { cpuSnapshot, type CpuSnapshot } from './lib/cpu.ts';
import { inParallel } from './lib/parallel.ts';

const { values } = parseArgs({ options: { instances: { type: 'string', default: '200' }, watchers: { type: 'string', default: '1' } } });
const N = Number(values.instances);
const W = Number(values.watchers);
if (!Number.isInteger(N) || N < 10 || N > 2000) throw new Error('--instances: must be an integer from 10 to 2000');
if (!Number.isInteger(W) || W < 0 || W > 10) throw new Error('--watchers: must be an integer from 0 to 10');

const config = loadConnectionConfig(process.env);
const kubeConfig = loadKubeConfig(config.kubeconfigPath);
const custom = makePooledApiClient(kubeConfig, CustomObjectsApi);
const core = makePooledApiClient(kubeConfig, CoreV1Api);
const instances = new KubeInstanceApi(kubeConfig);
const NS = `api-cost-${Date.now().toString(36)}`;
const PLURAL = 'challengeinstances';
const CONCURRENCY = 8;

/** CPU ms of the API server and etcd between two snapshots. */
function spent(before: CpuSnapshot, after: CpuSnapshot): { apiserver: number; etcd: number } {
  const sum = (group: string): number => {
    let ticks = 0;
    for (const [pid, now] of after.byPid) {
      if (now.group !== group) continue;
      ticks += now.ticks - (before.byPid.get(pid)?.ticks ?? 0);
    }
    return ticks * 10;
  };
  return { apiserver: sum('kube-apiserver'), etcd: sum('etcd') };
}

const rows: string[][] = [];
async function measure(label: string, work: (i: number) => Promise<unknown>): Promise<void> {
  // Let the previous kind's watch fan-out and etcd's compaction settle first.
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const before = cpuSnapshot();
  const began = performance.now();
  await inParallel(N, CONCURRENCY, work);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const cost = spent(before, cpuSnapshot());
  const wall = performance.now() - began - 1_000;
  rows.push([label, (cost.apiserver / N).toFixed(1), (cost.etcd / N).toFixed(1), ((cost.apiserver + cost.etcd) / N).toFixed(1), (wall / N).toFixed(1)]);
  console.log(`${label}: API server ${(cost.apiserver / N).toFixed(1)} ms, etcd ${(cost.etcd / N).toFixed(1)} ms a request`);
}

const name = (i: number): string => `cost-${i}`;
const get = async (i: number): Promise<ChallengeInstance> => {
  const found = await instances.get(NS, name(i));
  if (found === undefined) throw new Error(`${NS}/${name(i)} is missing`);
  return found;
};
const stamp = (i: number, round: string): object => ({
  node: 'bench-node',
  containerId: `${round}${i}`.padEnd(64, '0'),
  endpoints: [{ name: 'http', protocol: 'TCP', host: '127.0.0.1', port: 28_000 + i }],
  startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  conditions: [{ type: 'Ready', status: 'True', reason: 'ContainerReady', message: `Container is ready on node bench-node (${round}).`, observedGeneration: 1, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }],
});

const aborts: AbortController[] = [];
try {
  await core.createNamespace({ body: { metadata: { name: NS } } });
  for (let w = 0; w < W; w += 1) {
    const watch = new Watch(kubeConfig);
    aborts.push(await watch.watch(`/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`, {}, () => undefined, () => undefined));
  }
  console.log(`${N} instances in ${NS}, ${W} watch(es), ${CONCURRENCY} requests at a time`);
  await measure('create (the platform)', (i) => custom.createNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace: NS, plural: PLURAL,
    body: { apiVersion: API_VERSION, kind: 'ChallengeInstance', metadata: { name: name(i) }, spec: { image: 'ctfleet-test/web:1', team: `team-${i}`, challenge: 'web', ports: [{ name: 'http', containerPort: 8080 }], ttlSeconds: 7200 } },
  }));
  await measure('finalizer, merge patch', async (i) => instances.addFinalizer(await get(i)));
  await measure('get', get);
  await measure('status, server-side apply', async (i) => instances.applyStatus(await get(i), FIELD_MANAGERS.worker, stamp(i, 'a')));
  await measure('status, merge patch', (i) => custom.patchNamespacedCustomObjectStatus(
    { group: GROUP, version: VERSION, namespace: NS, plural: PLURAL, name: name(i), body: { status: stamp(i, 'b') } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  ));
  await measure('Event', async (i) => instances.recordEvent(await get(i), { type: 'Normal', reason: 'Running', message: 'bench' }, 'bench'));
  console.log('\nCPU a request, ms (the finalizer, SSA and Event rows include a get each; subtract the get row)');
  console.log(formatTable(['request', 'API server', 'etcd', 'both', 'wall ms / request at 8'], rows));
} finally {
  for (const abort of aborts) abort.abort();
  // No controller runs here to take the finalizers off: left on, they kept the
  // namespace Terminating for good and its controller retrying, which cost the
  // API server ~13 % of a core in every later run on this stack.
  await inParallel(N, CONCURRENCY, async (i) => {
    const found = await instances.get(NS, name(i)).catch(() => undefined);
    if (found !== undefined) await instances.removeFinalizer(found).catch(() => undefined);
  });
  execFileSync('kubectl', ['delete', 'namespace', NS, '--wait=false'], { stdio: 'ignore' });
}
