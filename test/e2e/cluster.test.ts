import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Docker from 'dockerode';
import { loadKubeConfig } from '../../src/adapters/kubernetes/kube-config.ts';
import {
  NODE_IP,
  NODE_NAME,
  clusterUnavailable,
  dockerSocketGroup,
  installRelease,
  kubectl,
  kubectlExec,
  ok,
  parseProcStatus,
  pods,
  uninstallRelease,
  waitForPods,
  type Release,
} from '../support/cluster.ts';
import { Instances, containersOf, fetchText, installCrd, isRunning, manifest, webSpec } from '../support/ctfleet.ts';
import { eventually, stackConfig, uniqueSuffix } from '../support/stack.ts';

// The Helm chart on a real node (hack/stack.sh up --cluster): every pod Ready, the
// worker running with exactly the identity and privileges the chart gives it, and a
// ChallengeInstance served from the Docker engine through the worker pod.
const skip = await clusterUnavailable();
if (skip !== undefined) console.log(`# cluster tests skipped: ${skip}`);

/** How long a fresh release may take until every pod is Ready (images are local; no pulls). */
const READY_WITHIN_MS = 240_000;
/** CAP_NET_ADMIN (12) alone: the chart's worker drops ALL and adds NET_ADMIN for its firewall. */
const NET_ADMIN_ONLY = (1n << 12n).toString(16).padStart(16, '0');

describe('the Helm chart on the local cluster', { skip }, () => {
  const suffix = uniqueSuffix();
  const release: Release = { name: `cl-${suffix}`, namespace: `e2e-cluster-${suffix}` };
  const instanceName = `web-${suffix}`;
  let instances: Instances;

  before(async () => {
    instances = new Instances(loadKubeConfig(stackConfig().kubeconfigPath));
    // The chart ships no CRDs (they are installed apart, like in production).
    await installCrd();
    // Only this namespace: the release must not act on other test files' instances.
    await installRelease(release, [`watchNamespaces={${release.namespace}}`]);
  });

  after(async () => {
    // The instance first, while the controller and worker that remove its container still run.
    await kubectl(['delete', 'challengeinstance', instanceName, '-n', release.namespace, '--ignore-not-found', '--wait=false']);
    await instances.waitForGone(release.namespace, instanceName, 60_000).catch(() => undefined);
    await uninstallRelease(release);
    await kubectl(['delete', 'namespace', release.namespace, '--wait=false']);
  });

  test('every pod of the release is Ready, and CoreDNS serves the cluster', async () => {
    const started = Date.now();
    const ready = await waitForPods(release.namespace, { controller: 2, worker: 1, api: 2, redis: 1 }, READY_WITHIN_MS);
    console.log(`# release ${release.name}: ${ready.length} pods Ready ${Math.round((Date.now() - started) / 1000)} s after the test began`);
    assert.ok(ready.every((pod) => pod.node === NODE_NAME), `all on ${NODE_NAME}: ${JSON.stringify(ready)}`);
    const dns = await pods('kube-system', 'k8s-app=coredns');
    assert.equal(dns.filter((pod) => pod.ready).length, 1, `CoreDNS Ready: ${JSON.stringify(dns)}`);
    // From a pod: the bundled Redis Service resolves by name to its cluster IP; names
    // outside cluster.local get no answer (CoreDNS forwards nothing).
    const [service] = (await ok('kubectl get svc', kubectl(['get', 'svc', '-n', release.namespace, '-l', 'app.kubernetes.io/component=redis', '-o', 'jsonpath={range .items[?(@.spec.clusterIP!="None")]}{.metadata.name} {.spec.clusterIP}{"\\n"}{end}']))).trim().split('\n');
    const [redisName, redisIP] = (service ?? '').split(' ');
    const controller = ready.find((pod) => pod.component === 'controller');
    assert.ok(controller !== undefined && redisName !== undefined && redisIP !== undefined, `a controller pod and the Redis Service: ${service}`);
    const answer = await ok('nslookup', kubectlExec(release.namespace, controller.name, 'controller', ['nslookup', `${redisName}.${release.namespace}.svc.cluster.local`]));
    assert.match(answer, new RegExp(`Address:\\s*${redisIP.replaceAll('.', '\\.')}`), answer);
    const outside = await kubectlExec(release.namespace, controller.name, 'controller', ['nslookup', 'example.com.']);
    assert.notEqual(outside.code, 0, `example.com must not resolve: ${outside.stdout}`);
  });

  test("the worker's container runs as the chart says and reaches Docker", async () => {
    const [worker] = await pods(release.namespace, 'app.kubernetes.io/component=worker');
    assert.ok(worker?.ready, `a Ready worker pod: ${JSON.stringify(worker)}`);
    // hostNetwork (firewall on, the default): the pod's IP is the node's.
    assert.equal(worker.podIP, NODE_IP);
    const status = parseProcStatus(await ok('cat /proc/1/status', kubectlExec(release.namespace, worker.name, 'worker', ['cat', '/proc/1/status'])));
    // Root (the firewall needs it; the Docker socket makes it root on the node anyway)…
    assert.equal(status.Uid?.split(/\s+/)[0], '0', `Uid: ${status.Uid}`);
    assert.equal(status.Gid?.split(/\s+/)[0], '0', `Gid: ${status.Gid}`);
    // …with the socket's group, NET_ADMIN and nothing else, no privilege escalation, a seccomp filter.
    assert.ok(status.Groups?.split(/\s+/).includes(String(dockerSocketGroup())), `Groups ${status.Groups} include the Docker socket's ${dockerSocketGroup()}`);
    assert.equal(status.CapEff, NET_ADMIN_ONLY, `CapEff: ${status.CapEff}`);
    assert.equal(status.CapPrm, NET_ADMIN_ONLY, `CapPrm: ${status.CapPrm}`);
    assert.equal(status.CapBnd, NET_ADMIN_ONLY, `CapBnd: ${status.CapBnd}`);
    assert.equal(status.NoNewPrivs, '1');
    assert.equal(status.Seccomp, '2', 'a seccomp filter (RuntimeDefault)');
    // A read-only root filesystem: the root mount says ro, and writing there fails.
    const mounts = await ok('cat /proc/1/mounts', kubectlExec(release.namespace, worker.name, 'worker', ['cat', '/proc/1/mounts']));
    const root = mounts.split('\n').find((line) => line.split(' ')[1] === '/');
    assert.match(root ?? '', /\sro[,\s]/, `root mount: ${root}`);
    const write = await kubectlExec(release.namespace, worker.name, 'worker', ['touch', '/written-by-test']);
    assert.notEqual(write.code, 0);
    assert.match(write.stderr, /Read-only file system/);
    // Docker through the mounted socket: the worker's own readiness check says so.
    const readyz = JSON.parse(await ok('wget /readyz', kubectlExec(release.namespace, worker.name, 'worker', ['wget', '-qO-', 'http://127.0.0.1:18080/readyz']))) as { checks: { name: string; healthy: boolean }[] };
    assert.deepEqual(readyz.checks.find((check) => check.name === 'worker.docker')?.healthy, true, JSON.stringify(readyz));
  });

  test('a ChallengeInstance runs on the worker pod, and its endpoint on the node IP answers from the host', async () => {
    const team = `team-${suffix}`;
    await ok('kubectl apply', kubectl(['apply', '-f', '-'], manifest(release.namespace, instanceName, webSpec(team))));
    const running = await instances.waitFor(release.namespace, instanceName, 'Running', isRunning, 120_000);
    const status = running.status ?? {};
    assert.equal(status.node, NODE_NAME);
    const endpoint = status.endpoints?.find((candidate) => candidate.name === 'http');
    // The worker advertises status.hostIP (the downward API): the node IP on ctfleet0.
    assert.equal(endpoint?.host, NODE_IP, JSON.stringify(status.endpoints));
    assert.match(await fetchText(`http://${endpoint.host}:${endpoint.port}/`), new RegExp(`hello ${team}`));
    const docker = new Docker();
    const container = await eventually('the instance container', 10_000, async () => {
      const found = await containersOf(docker, release.namespace);
      return found.length === 1 ? found[0] : undefined;
    });
    // The worker pod's node name (CTFLEET_NODE_NAME from spec.nodeName) on the Docker container.
    assert.equal(container.Labels['ctfleet.io/node'], NODE_NAME, JSON.stringify(container.Labels));
    assert.equal(container.State, 'running');
  });
});
