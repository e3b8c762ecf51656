import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Docker from 'dockerode';
import { loadKubeConfig } from '../../src/adapters/kubernetes/kube-config.ts';
import { CHART, clusterUnavailable, helm, installRelease, kubectl, NODE_IP, ok, pods, uninstallRelease, waitForPods, type Release } from '../support/cluster.ts';
import { ARTIFACTS, challengeInstanceManifest, challengeManifest, containersOf, fetchText, installCrd, Instances, isRunning, manifest, ROOT, webSpec, type RawInstance } from '../support/ctfleet.ts';
import { eventually, stackConfig, uniqueSuffix } from '../support/stack.ts';

// Operating the chart on a real node (hack/stack.sh up --cluster): the leader pod
// deleted mid-burst, a rolling `helm upgrade`, the worker pod removed, and `helm
// uninstall`, each with instances running; what happens to them is what
// docs/local-cluster.md and docs/reliability.md say.
const skip = await clusterUnavailable();
if (skip !== undefined) console.log(`# cluster operations tests skipped: ${skip}`);

const READY_WITHIN_MS = 240_000;
const PODS = { controller: 2, worker: 1, api: 2, redis: 1 };

describe('operating the chart on the local cluster', { skip }, () => {
  const suffix = uniqueSuffix();
  const release: Release = { name: `ops-${suffix}`, namespace: `e2e-cluster-ops-${suffix}` };
  const ns = release.namespace;
  const docker = new Docker();
  const names = Array.from({ length: 10 }, (_, i) => `burst-${i}`);
  let instances: Instances;

  /** Each instance's container id and endpoint, as its status says. */
  async function placements(): Promise<Map<string, { containerId: string; endpoint: string }>> {
    const map = new Map<string, { containerId: string; endpoint: string }>();
    for (const name of names) {
      const found = await instances.get(ns, name);
      const endpoint = found?.status?.endpoints?.[0];
      map.set(name, { containerId: found?.status?.containerId ?? '', endpoint: endpoint === undefined ? '' : `${endpoint.host}:${endpoint.port}` });
    }
    return map;
  }

  /** Every instance Running, with exactly one container each (by uid), all answering on their endpoints. */
  async function allServeOnce(timeoutMs: number): Promise<RawInstance[]> {
    const running = await Promise.all(names.map((name) => instances.waitFor(ns, name, 'Running', isRunning, timeoutMs)));
    const containers = await containersOf(docker, ns);
    for (const instance of running) {
      const mine = containers.filter((container) => container.Labels['ctfleet.io/uid'] === instance.metadata.uid);
      assert.equal(mine.length, 1, `${instance.metadata.name}: one container, not ${mine.length}`);
      assert.equal(mine[0]?.Id, instance.status?.containerId);
      const endpoint = instance.status?.endpoints?.[0];
      assert.equal(endpoint?.host, NODE_IP);
      assert.match(await fetchText(`http://${endpoint.host}:${endpoint.port}/`), /hello team-/);
    }
    assert.equal(containers.length, running.length + 1, 'no container beside the instances\' (and the Challenge instance\'s)');
    return running;
  }

  before(async () => {
    instances = new Instances(loadKubeConfig(stackConfig().kubeconfigPath));
    await installCrd();
    await installRelease(release, [`watchNamespaces={${ns}}`]);
    await waitForPods(ns, PODS, READY_WITHIN_MS);
    // One instance of a Challenge, so uninstall has a Challenge to release.
    await ok('apply challenge', kubectl(['apply', '-f', '-'], [challengeManifest(ns, 'web-101'), challengeInstanceManifest(ns, 'chal-team-1', 'team-1', 'web-101')].join('\n')));
    await instances.waitFor(ns, 'chal-team-1', 'Running', isRunning, 120_000);
  });

  after(async () => {
    await uninstallRelease(release);
    for (const container of await containersOf(docker, ns)) await docker.getContainer(container.Id).remove({ force: true });
    await kubectl(['delete', 'namespace', ns, '--wait=false']);
  });

  test('the leader controller pod deleted while 10 instances are created: all 10 run, one container each', async () => {
    const lease = JSON.parse(await ok('get lease', kubectl(['get', 'lease', `${release.name}-ctfleet-leader`, '-n', ns, '-o', 'json']))) as { spec: { holderIdentity: string } };
    const controllers = await pods(ns, 'app.kubernetes.io/component=controller');
    const leader = controllers.find((pod) => lease.spec.holderIdentity.startsWith(`${pod.name}-`));
    assert.ok(leader !== undefined, `the Lease holder ${lease.spec.holderIdentity} is one of ${controllers.map((pod) => pod.name).join(', ')}`);
    await ok('apply 10 instances', kubectl(['apply', '-f', '-'], names.map((name, i) => manifest(ns, name, webSpec(`team-${i + 10}`))).join('\n')));
    await ok('delete the leader', kubectl(['delete', 'pod', leader.name, '-n', ns, '--wait=false']));
    await allServeOnce(180_000);
    const after = JSON.parse(await ok('get lease', kubectl(['get', 'lease', `${release.name}-ctfleet-leader`, '-n', ns, '-o', 'json']))) as { spec: { holderIdentity: string } };
    assert.ok(!after.spec.holderIdentity.startsWith(`${leader.name}-`), `another pod leads now: ${after.spec.holderIdentity}`);
    await waitForPods(ns, PODS, READY_WITHIN_MS);
  });

  test('a helm upgrade that rolls the controller, the worker and the API keeps every container and endpoint', async () => {
    const before = await placements();
    const workerBefore = (await pods(ns, 'app.kubernetes.io/component=worker'))[0]?.name;
    await ok('helm upgrade', helm(['upgrade', release.name, CHART, '-n', ns, '--reuse-values', '--set', 'logLevel=debug']));
    for (const workload of [`deployment/${release.name}-ctfleet-controller`, `daemonset/${release.name}-ctfleet-worker`, `deployment/${release.name}-ctfleet-api`]) {
      await ok(`rollout ${workload}`, kubectl(['rollout', 'status', workload, '-n', ns, '--timeout=240s']));
    }
    const workerAfter = (await pods(ns, 'app.kubernetes.io/component=worker'))[0]?.name;
    assert.notEqual(workerAfter, workerBefore, 'the worker pod was replaced');
    const env = await ok('worker env', kubectl(['get', `daemonset/${release.name}-ctfleet-worker`, '-n', ns, '-o', 'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="CTFLEET_LOG_LEVEL")].value}']));
    assert.equal(env, 'debug');
    await allServeOnce(60_000);
    assert.deepEqual(await placements(), before, 'same containers, same endpoints');
  });

  test('the worker pod removed (as a drain would): its containers keep serving, the new pod takes them up, and new instances start', async () => {
    const before = await placements();
    const [worker] = await pods(ns, 'app.kubernetes.io/component=worker');
    assert.ok(worker !== undefined);
    await ok('delete the worker pod', kubectl(['delete', 'pod', worker.name, '-n', ns, '--wait=true', '--timeout=120s']));
    // No worker at all for a moment: the containers are Docker's, and keep serving.
    const first = before.get(names[0] ?? '')?.endpoint ?? '';
    assert.match(await fetchText(`http://${first}/`), /hello team-/);
    await waitForPods(ns, PODS, READY_WITHIN_MS);
    await allServeOnce(60_000);
    assert.deepEqual(await placements(), before, 'the new worker pod adopted every container');
    await ok('one more', kubectl(['apply', '-f', '-'], manifest(ns, 'after-drain', webSpec('team-99'))));
    const added = await instances.waitFor(ns, 'after-drain', 'Running', isRunning, 120_000);
    assert.equal(added.status?.endpoints?.[0]?.host, NODE_IP);
    await ok('delete it', kubectl(['delete', 'chi', 'after-drain', '-n', ns, '--timeout=60s']));
  });

  test('helm uninstall removes every instance and its container first, then releases the Challenges; nothing is left on the node', async () => {
    const uninstalled = await helm(['uninstall', release.name, '-n', ns, '--wait', '--timeout', '300s']);
    assert.equal(uninstalled.code, 0, uninstalled.stderr);
    assert.deepEqual(await containersOf(docker, ns), [], 'no container of the release\'s instances is left in Docker');
    assert.equal((await ok('instances', kubectl(['get', 'chi', '-n', ns, '-o', 'name']))).trim(), '');
    const finalizers = await ok('challenge', kubectl(['get', 'chal', 'web-101', '-n', ns, '-o', 'jsonpath={.metadata.finalizers}']));
    assert.equal(finalizers, '', 'the Challenge stays, released');
    await eventually('the release\'s pods gone', 120_000, async () => ((await pods(ns)).length === 0 ? true : undefined));
    const jobs = await ok('jobs', kubectl(['get', 'jobs,serviceaccounts,roles,rolebindings', '-n', ns, '-l', `app.kubernetes.io/instance=${release.name}`, '-o', 'name']));
    assert.equal(jobs.trim(), '', 'the hooks cleaned up after themselves');
    const clusterWide = await ok('cluster roles', kubectl(['get', 'clusterroles,clusterrolebindings', '-l', `app.kubernetes.io/instance=${release.name}`, '-o', 'name']));
    assert.equal(clusterWide.trim(), '');
    await ok('delete the Challenge', kubectl(['delete', 'chal', 'web-101', '-n', ns, '--timeout=20s']));
  });

  test('kubectl apply -k of the plain manifests (the GitOps path) in a fresh ctfleet-system runs instances just as well', async () => {
    // An overlay as a GitOps user writes one: this cluster's images (no registry), no
    // storage provisioner for Redis, the test images allowed, ports on the node IP.
    const overlay = join(ARTIFACTS, `gitops-overlay-${suffix}`);
    mkdirSync(overlay, { recursive: true });
    writeFileSync(join(overlay, 'kustomization.yaml'), [
      'apiVersion: kustomize.config.k8s.io/v1beta1',
      'kind: Kustomization',
      `resources: [${relative(overlay, join(ROOT, 'manifests'))}]`,
      'images:',
      '  - { name: ctfleet, newTag: dev }',
      '  - { name: redis, newName: ctfleet.local/redis, newTag: local }',
      'patches:',
      '  - target: { kind: StatefulSet, name: ctfleet-redis }',
      '    patch: |-',
      '      - { op: remove, path: /spec/volumeClaimTemplates }',
      '      - { op: add, path: /spec/template/spec/volumes/-, value: { name: data, emptyDir: {} } }',
      '  - patch: |-',
      '      apiVersion: apps/v1',
      '      kind: DaemonSet',
      '      metadata: { name: ctfleet-worker, namespace: ctfleet-system }',
      '      spec: { template: { spec: { containers: [ { name: worker, env: [ { name: CTFLEET_ALLOWED_IMAGES, value: "ctfleet-test/*" }, { name: CTFLEET_BIND_ADDRESS, value: "' + NODE_IP + '" } ] } ] } } }',
      '',
    ].join('\n'));
    const system = 'ctfleet-system';
    try {
      await ok('namespace', kubectl(['create', 'namespace', system]));
      for (const [secret, key] of [['ctfleet-redis', 'redis-password'], ['ctfleet-api-tokens', 'tokens'], ['ctfleet-flag-key', 'key']] as const) {
        const value = key === 'tokens' ? `platform:admin:${randomBytes(24).toString('hex')}` : randomBytes(32).toString('hex');
        await ok(`secret ${secret}`, kubectl(['create', 'secret', 'generic', secret, '-n', system, `--from-literal=${key}=${value}`]));
      }
      await ok('apply -k', kubectl(['apply', '--server-side', '-k', overlay]));
      await waitForPods(system, PODS, READY_WITHIN_MS);
      await ok('apply', kubectl(['apply', '-f', '-'], [challengeManifest(ns, 'web-202'), challengeInstanceManifest(ns, 'gitops-team-1', 'team-1', 'web-202')].join('\n')));
      const running = await instances.waitFor(ns, 'gitops-team-1', 'Running', isRunning, 120_000);
      const endpoint = running.status?.endpoints?.[0];
      assert.equal(endpoint?.host, NODE_IP);
      assert.match(await fetchText(`http://${endpoint.host}:${endpoint.port}/`), /hello from web-202/);
      await ok('delete the instance', kubectl(['delete', 'chi', 'gitops-team-1', '-n', ns, '--timeout=60s']));
      assert.deepEqual(await containersOf(docker, ns), []);
    } finally {
      await kubectl(['delete', 'chi', '--all', '-n', ns, '--timeout=60s']);
      await kubectl(['delete', 'chal', '--all', '-n', ns, '--wait=false']);
      // Not `delete -k`: that would delete the CRDs, and every test's objects with them.
      await kubectl(['delete', 'namespace', system, '--timeout=120s']);
      await kubectl(['delete', 'clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings', '-l', 'app.kubernetes.io/instance=ctfleet']);
      rmSync(overlay, { recursive: true, force: true });
    }
  });
});
