import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Docker from 'dockerode';
import { PRODUCTION_NODE_FLAGS } from '../../src/app/node-flags.ts';
import { run } from '../support/cluster.ts';
import { ARTIFACTS, containersOf, fetchText, isRunning, kubectl, manifest, ROOT, webSpec } from '../support/ctfleet.ts';
import { logProblems } from '../support/logs.ts';
import { Scenario } from '../support/scenario.ts';
import { eventually, freePort, stackConfig } from '../support/stack.ts';

// ctfleet's own image, built by hack/image.sh from the repo's Dockerfile on a Node 24
// base made here, runs the controller and the worker as containers (host network, to
// reach the stack on loopback; the worker with the Docker socket) and serves an
// instance end to end.
const TAG = 'ctfleet:e2e';
const SOCKET = '/var/run/docker.sock';

function demultiplex(raw: Buffer): string {
  let text = '';
  for (let offset = 0; offset + 8 <= raw.length;) {
    const size = raw.readUInt32BE(offset + 4);
    text += raw.subarray(offset + 8, offset + 8 + size).toString('utf8');
    offset += 8 + size;
  }
  return text;
}

describe('ctfleet from its container image', () => {
  // Its namespace, Redis prefix, node name and port block; its cleanup releases
  // whatever a failed test left, with a ctfleet run from source.
  const scenario = new Scenario('image', 15);
  const { namespace } = scenario;
  const docker = new Docker();
  const started: Docker.Container[] = [];
  let kubeconfigDir: string;

  const start = async (role: 'controller' | 'worker', httpPort: number, extra: Partial<Docker.ContainerCreateOptions> = {}, env: string[] = []): Promise<Docker.Container> => {
    const container = await docker.createContainer({
      Image: TAG,
      name: `ctfleet-${namespace}-${role}`,
      Cmd: [role],
      Env: [
        'KUBECONFIG=/etc/ctfleet/kubeconfig',
        `REDIS_URL=${stackConfig().redis.url}`,
        ...Object.entries(scenario.env).map(([key, value]) => `${key}=${value}`),
        'CTFLEET_HTTP_HOST=127.0.0.1',
        `CTFLEET_HTTP_PORT=${httpPort}`,
        ...env,
      ],
      ...extra,
      HostConfig: { NetworkMode: 'host', Binds: [`${kubeconfigDir}:/etc/ctfleet:ro`], ...extra.HostConfig },
    });
    started.push(container);
    await container.start();
    return container;
  };

  before(async () => {
    await scenario.prepare();
    // The stack's kubeconfig is self-contained (CA data and a token); the image's
    // user (65532) must be able to read the copy.
    kubeconfigDir = mkdtempSync(join(tmpdir(), 'ctfleet-image-'));
    chmodSync(kubeconfigDir, 0o755);
    copyFileSync(stackConfig().kubeconfigPath ?? '', join(kubeconfigDir, 'kubeconfig'));
    chmodSync(join(kubeconfigDir, 'kubeconfig'), 0o644);
  });

  after(async () => {
    for (const container of started) await container.remove({ force: true }).catch(() => undefined);
    await scenario.cleanup();
  });

  test('hack/image.sh builds the image from the Dockerfile: non-root, entrypoint ctfleet, production dependencies only', async () => {
    const built = await run('bash', [join(ROOT, 'hack/image.sh'), TAG], { timeoutMs: 20 * 60_000 });
    assert.equal(built.code, 0, `${built.stdout}\n${built.stderr}`);
    assert.equal(built.stdout.trim().split('\n').at(-1), TAG);
    const image = await docker.getImage(TAG).inspect();
    assert.equal(image.Config.User, '65532:65532');
    assert.deepEqual(image.Config.Entrypoint, ['node', ...PRODUCTION_NODE_FLAGS, '/app/src/main.ts'], 'the production V8 flags of src/app/node-flags.ts');
    assert.deepEqual(image.Config.Cmd, ['all']);
    const sizeMiB = Math.round(image.Size / 1024 / 1024);
    console.log(`# image ${TAG}: ${sizeMiB} MiB`);
    assert.ok(sizeMiB < 400, `the image is ${sizeMiB} MiB`);
    const probe = await run('docker', ['run', '--rm', '--entrypoint', 'node', TAG, '-e', [
      "const r = (m) => { try { require.resolve(m, { paths: ['/app'] }); return 'yes'; } catch { return 'no'; } };",
      "console.log(process.versions.node.split('.')[0], process.getuid(), r('bullmq'), r('typescript'), r('playwright-core'))",
    ].join(' ')], { timeoutMs: 60_000 });
    assert.equal(probe.code, 0, probe.stderr);
    assert.equal(probe.stdout.trim(), '24 65532 yes no no', 'Node 24, uid 65532, bullmq present, dev dependencies absent');
    const iptables = await run('docker', ['run', '--rm', '--entrypoint', 'iptables', TAG, '--version'], { timeoutMs: 60_000 });
    assert.match(iptables.stdout, /nf_tables/, `the worker's firewall tool, on the nft backend Docker uses: ${iptables.stderr}`);
    const usage = await run('docker', ['run', '--rm', TAG, 'no-such-role'], { timeoutMs: 60_000 });
    assert.equal(usage.code, 2, 'an unknown role exits 2');
    assert.match(usage.stderr + usage.stdout, /controller|worker|api|all/);
  });

  test('the controller and the worker run from the image against the stack and serve an instance end to end', async () => {
    const [controllerPort, workerPort] = [await freePort(), await freePort()];
    const socketGroup = String(statSync(SOCKET).gid);
    await start('controller', controllerPort);
    // As the chart runs it with worker.network.firewall (the default): root with only
    // NET_ADMIN on the host network, for its iptables chains; the socket's group as well.
    await start('worker', workerPort, { User: '0:0', HostConfig: { Binds: [`${kubeconfigDir}:/etc/ctfleet:ro`, `${SOCKET}:${SOCKET}`], GroupAdd: [socketGroup], CapDrop: ['ALL'], CapAdd: ['NET_ADMIN'] } }, [
      'CTFLEET_ADVERTISE_ADDRESS=127.0.0.1',
    ]);
    for (const [role, port] of [['controller', controllerPort], ['worker', workerPort]] as const) {
      await eventually(`the ${role} container to be ready`, 60_000, async () => ((await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined));
    }
    const names = ['web-101-team-1', 'web-101-team-2'];
    const applied = await kubectl(['apply', '-f', '-'], names.map((name) => manifest(namespace, name, webSpec(name.replace('web-101-', '')))).join('\n'));
    assert.equal(applied.code, 0, applied.stderr);
    for (const name of names) {
      const instance = await scenario.instances.waitFor(namespace, name, 'to run', isRunning, 90_000);
      assert.equal(instance.status?.node, scenario.node('a'));
      const endpoint = instance.status.endpoints?.[0];
      const [low, high] = scenario.portRange(0).split('-').map(Number);
      assert.ok(endpoint !== undefined && endpoint.port >= (low ?? 0) && endpoint.port <= (high ?? 0), `endpoint in the worker's range ${scenario.portRange(0)}: ${JSON.stringify(endpoint)}`);
      assert.match(await fetchText(`http://${endpoint.host}:${endpoint.port}/`), new RegExp(`hello ${name.replace('web-101-', '')}`));
    }
    const containers = await containersOf(docker, namespace);
    assert.equal(containers.length, 2);
    assert.ok(containers.every((container) => container.Labels['ctfleet.io/node'] === scenario.node('a')), 'made by the worker in the image');

    for (const [index, name] of names.entries()) {
      const deleted = await kubectl(['delete', 'challengeinstances', '-n', namespace, name, '--wait=true', '--timeout=60s']);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal((await containersOf(docker, namespace)).length, names.length - index - 1, `deleting ${name} took its container with it`);
    }

    // SIGTERM (docker stop) ends both cleanly.
    for (const container of started) {
      await container.stop({ t: 30 });
      assert.equal((await container.inspect()).State.ExitCode, 0);
    }
    // Their logs keep the logging rules. Docker's log stream frames each chunk
    // with an 8-byte header; the text is what follows.
    mkdirSync(ARTIFACTS, { recursive: true });
    const problems: string[] = [];
    for (const container of started) {
      const file = join(ARTIFACTS, `${(await container.inspect()).Name.replace('/', '')}.log`);
      writeFileSync(file, demultiplex(await container.logs({ stdout: true, stderr: true, follow: false })));
      const { lines, problems: found } = logProblems(file);
      assert.ok(lines > 3, `${file} has ${lines} log lines`);
      problems.push(...found.map((problem) => `${file}: ${problem}`));
    }
    assert.deepEqual(problems, [], 'the logs of the containers keep the logging rules');
    const workerLog = readFileSync(join(ARTIFACTS, `ctfleet-${namespace}-worker.log`), 'utf8');
    assert.match(workerLog, /Instance networks and firewall rules in place/, "the image's iptables installed the worker's rules");
  });
});
