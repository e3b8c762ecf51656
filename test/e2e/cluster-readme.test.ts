import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Docker from 'dockerode';
import { loadKubeConfig } from '../../src/adapters/kubernetes/kube-config.ts';
import { clusterUnavailable, helm, kubectl, NODE_IP, NODE_NAME, ok, run, waitForPods } from '../support/cluster.ts';
import { containersOf, fetchText, installCrd, Instances, isRunning, manifest, ROOT, webSpec } from '../support/ctfleet.ts';
import { stackConfig } from '../support/stack.ts';

// The README's "Installing on a cluster" section, run as written on the local
// cluster (hack/stack.sh up --cluster). What the README assumes of a real cluster
// is made true here first, and only that: the image pushed to its registry (tagged
// into the node's containerd under the README's name), Redis's image, a volume for
// its claim (a static PersistentVolume: there is no provisioner), and a challenge
// image matching the README's allow-list.
const skip = await clusterUnavailable();
if (skip !== undefined) console.log(`# README install test skipped: ${skip}`);

const CONTAINERD = '/run/ctfleet-cluster/containerd.sock';
const ctr = (...args: string[]) => run('ctr', ['-a', CONTAINERD, '-n', 'k8s.io', ...args]);

/** The shell commands of the README section: fenced sh blocks, comments dropped, continuations joined. */
function readmeCommands(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Installing on a cluster'), readme.indexOf('\n## ', readme.indexOf('## Installing on a cluster') + 5));
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
  return blocks.flatMap((block) => block
    .split('\n')
    .filter((line) => !line.trim().startsWith('#') && line.trim() !== '')
    .join('\n')
    .replace(/\\\n\s*/g, ' ')
    .split('\n'));
}

describe("the README's install section on a real node", { skip }, () => {
  const docker = new Docker();
  const pvDir = join(ROOT, '.stack', 'cluster', 'readme-redis-pv');
  let commands: string[] = [];
  let instances: Instances;

  before(async () => {
    instances = new Instances(loadKubeConfig(stackConfig().kubeconfigPath));
    await installCrd();
    commands = readmeCommands();
    // "push it to your registry": the node's runtime has it under that name.
    await ok('tag ctfleet', ctr('images', 'tag', '--force', 'docker.io/library/ctfleet:dev', 'registry.example/ctfleet:0.1.0'));
    await ok('tag redis', ctr('images', 'tag', '--force', 'ctfleet.local/redis:local', 'docker.io/library/redis:7-alpine'));
    // A volume for Redis's claim, owned by the chart's Redis user (uid 999, gid 1000).
    mkdirSync(pvDir, { recursive: true, mode: 0o770 });
    await ok('chown', run('chown', ['999:1000', pvDir]));
    await ok('pv', kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: 'readme-redis', labels: { 'ctfleet.io/test': 'readme' } },
      spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Delete', hostPath: { path: pvDir, type: 'Directory' } },
    })));
    // A challenge image the README's allow-list (registry.example/ctf/*) admits.
    await docker.getImage('ctfleet-test/web:1').tag({ repo: 'registry.example/ctf/web', tag: '1' });
    await ok('namespace ctf', kubectl(['create', 'namespace', 'ctf']));
  });

  after(async () => {
    await kubectl(['delete', 'chi', '--all', '-n', 'ctf', '--timeout=60s']);
    await helm(['uninstall', 'ctfleet', '-n', 'ctfleet', '--wait', '--timeout', '300s', '--ignore-not-found']);
    for (const container of await containersOf(docker, 'ctf')) await docker.getContainer(container.Id).remove({ force: true });
    await kubectl(['delete', 'namespace', 'ctf', 'ctfleet', '--timeout=120s']);
    await kubectl(['delete', 'pv', 'readme-redis', '--ignore-not-found']);
    await kubectl(['label', 'node', NODE_NAME, 'ctfleet.io/docker=true', '--overwrite']);
    await ctr('images', 'rm', 'registry.example/ctfleet:0.1.0', 'docker.io/library/redis:7-alpine');
    await docker.getImage('registry.example/ctf/web:1').remove().catch(() => undefined);
    rmSync(pvDir, { recursive: true, force: true });
  });

  test('the section has the helm install and the node label commands', () => {
    assert.ok(commands.some((command) => command.startsWith('helm install ctfleet charts/ctfleet ')), commands.join('\n'));
    assert.ok(commands.some((command) => command.startsWith('kubectl label node <node> ctfleet.io/docker=true')), commands.join('\n'));
  });

  test('every command runs as written (<node> is this node), every pod is Ready, and an instance of an allowed image runs and answers', async () => {
    for (const written of commands) {
      const command = written.replace('<node>', NODE_NAME).replace('kubectl label node', 'kubectl label --overwrite node');
      const result = await run('bash', ['-c', command], { timeoutMs: 300_000 });
      assert.equal(result.code, 0, `${command}\n${result.stderr}${result.stdout}`);
    }
    await waitForPods('ctfleet', { controller: 2, worker: 1, api: 2, redis: 1 }, 240_000);
    const claim = await ok('pvc', kubectl(['get', 'pvc', '-n', 'ctfleet', '-o', 'jsonpath={.items[*].spec.volumeName}']));
    assert.equal(claim, 'readme-redis', 'Redis keeps its data on a volume, as the README\'s defaults ask');
    await ok('instance', kubectl(['apply', '-f', '-'], manifest('ctf', 'readme-web', webSpec('team-1', { image: 'registry.example/ctf/web:1' }))));
    const running = await instances.waitFor('ctf', 'readme-web', 'Running', isRunning, 120_000);
    const endpoint = running.status?.endpoints?.[0];
    assert.equal(endpoint?.host, NODE_IP);
    assert.match(await fetchText(`http://${endpoint.host}:${endpoint.port}/`), /hello team-1/);
    await ok('manifests instance refused', kubectl(['apply', '-f', '-'], manifest('ctf', 'readme-other', webSpec('team-2'))));
    const refused = await instances.waitFor('ctf', 'readme-other', 'to fail', (found) => found.status?.phase === 'Failed', 60_000);
    assert.equal(refused.status?.reason, 'ImageNotAllowed', 'only the README\'s allow-list runs');
  });
});
