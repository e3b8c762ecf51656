import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import type Docker from 'dockerode';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { perTeamFlagPart } from '../../src/domain/flags.ts';
import { containersOf, CtfleetProcess, deleteInstancesAndChallenges, deleteRedisKeys, fetchText, type Instances, isRunning, kubectl, prepareNamespace, type RawInstance, ROOT } from '../support/ctfleet.ts';
import { logProblems } from '../support/logs.ts';
import { eventually, stackConfig, uniqueSuffix } from '../support/stack.ts';

// manifests/samples/ as the demo applies them (hack/demo.sh): the Challenges and
// their instances, in a fresh namespace of this test's own instead of ctf-demo,
// with the flag key Secret the demo makes, against a ctfleet set up like the
// demo's (the test images' allow-list, endpoints on 127.0.0.1). Every sample
// instance runs, and its endpoint answers as the sample says it will. And the
// README's example of the same form is one the API server accepts.

const run = promisify(execFile);
const SAMPLES = join(ROOT, 'manifests/samples');
const SAMPLE_NAMESPACE = 'ctf-demo';
const suffix = uniqueSuffix();
const NS = `e2e-samples-${suffix}`;
const PREFIX = `{ctfleet-e2e-samples-${suffix}}`;
const FLAG_KEY = randomBytes(48);

/** The sample files, but namespace.yaml (the test has its own), with their namespace made this test's. */
function samples(): { files: string[]; text: string } {
  const files = readdirSync(SAMPLES).filter((file) => file.endsWith('.yaml') && file !== 'namespace.yaml').sort();
  const texts = files.map((file) => {
    const text = readFileSync(join(SAMPLES, file), 'utf8');
    assert.match(text, new RegExp(`namespace: ${SAMPLE_NAMESPACE}\\b`), `${file} names the demo's namespace`);
    return text.replaceAll(`namespace: ${SAMPLE_NAMESPACE}`, `namespace: ${NS}`);
  });
  return { files, text: texts.map((text) => text.trimEnd()).join('\n---\n') };
}

/** Sends a line to a TCP endpoint and resolves with the first line it answers. */
function echo(host: string, port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let reply = '';
    socket.setTimeout(3_000, () => {
      socket.destroy();
      reject(new Error(`no answer from ${host}:${port} (${reply.length} bytes)`));
    });
    socket.on('connect', () => socket.write(`${line}\n`));
    socket.on('data', (data: Buffer) => {
      reply += data.toString();
      if (reply.includes('\n')) {
        socket.destroy();
        resolve(reply.trim());
      }
    });
    socket.on('error', reject);
  });
}

describe('manifests/samples, applied as the demo applies them', () => {
  let docker: Docker;
  let instances: Instances;
  let ctfleet: CtfleetProcess;
  /** What `kubectl apply` made, as kind/name. */
  let applied: string[] = [];

  before(async () => {
    docker = createDockerClient(stackConfig().docker);
    let kubeConfig;
    ({ instances, kubeConfig } = await prepareNamespace(NS));
    // The demo's flag key Secret (hack/demo.sh): web-101's per-team flags are derived from it.
    await kubeConfig.makeApiClient(CoreV1Api).createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'ctfleet-flag-key' }, data: { key: FLAG_KEY.toString('base64') } } });
    ctfleet = new CtfleetProcess(
      'all',
      {
        CTFLEET_REDIS_PREFIX: PREFIX,
        CTFLEET_NAMESPACES: NS,
        CTFLEET_NODE_NAME: 'e2e-samples-node',
        CTFLEET_LEADER_ELECTION: 'false',
        CTFLEET_BIND_ADDRESS: '127.0.0.1',
        CTFLEET_ADVERTISE_ADDRESS: '127.0.0.1',
        CTFLEET_PORT_RANGE: '25600-25699',
        CTFLEET_FLAG_KEY_SECRET: `${NS}/ctfleet-flag-key`,
      },
      `e2e-samples-${suffix}`,
    );
  });

  after(async () => {
    await deleteInstancesAndChallenges(NS);
    await ctfleet.stop();
    for (const container of await containersOf(docker, NS)) await docker.getContainer(container.Id).remove({ force: true });
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
    await deleteRedisKeys(PREFIX);
  });

  test('the samples apply: two Challenges and three instances of them', async () => {
    const { files, text } = samples();
    assert.ok(files.length >= 2, files.join(', '));
    const result = await kubectl(['apply', '-f', '-'], text);
    assert.equal(result.code, 0, result.stderr);
    applied = [...result.stdout.matchAll(/^(\S+)\/(\S+) (?:created|configured|unchanged)$/gm)].map((match) => `${match[1]?.split('.')[0] ?? ''}/${match[2] ?? ''}`).sort();
    assert.deepEqual(applied, [
      'challenge/echo-200',
      'challenge/web-101',
      'challengeinstance/echo-200-team-12',
      'challengeinstance/web-101-team-12',
      'challengeinstance/web-101-team-7',
    ]);
  });

  test('every sample instance reaches Running with endpoints on 127.0.0.1 that answer', async () => {
    await ctfleet.untilReady();
    const names = applied.filter((object) => object.startsWith('challengeinstance/')).map((object) => object.slice('challengeinstance/'.length));
    const running = new Map<string, RawInstance>();
    for (const name of names) running.set(name, await instances.waitFor(NS, name, 'to run', isRunning, 120_000));

    for (const [name, instance] of running) {
      const endpoints = instance.status?.endpoints ?? [];
      assert.ok(endpoints.length > 0, `${name} reports an endpoint`);
      for (const endpoint of endpoints) {
        assert.equal(endpoint.host, '127.0.0.1', `${name}'s endpoint is on this machine`);
        assert.ok(endpoint.port >= 25600 && endpoint.port <= 25699, `${name}'s port ${endpoint.port} is in the test's range`);
      }
    }

    // web-101: HTTP, its greeting, and each team's own flag on its page (the test image shows $FLAG).
    for (const team of ['team-7', 'team-12']) {
      const url = running.get(`web-101-${team}`)?.status?.endpoints?.[0]?.url ?? '';
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const page = await fetchText(url);
      assert.match(page, /<p id="greeting">hello from web-101<\/p>/);
      assert.equal(/<p id="flag">([^<]*)<\/p>/.exec(page)?.[1], `CTF{${perTeamFlagPart(FLAG_KEY, { namespace: NS, challenge: 'web-101', team })}}`, `${team}'s page shows its own flag`);
    }

    // echo-200: TCP, echoes a line; its per-instance flag is a read-only file in the container.
    const echoEndpoint = running.get('echo-200-team-12')?.status?.endpoints?.[0];
    assert.equal(echoEndpoint?.protocol, 'TCP');
    const line = `ping ${randomBytes(4).toString('hex')}`;
    assert.equal(await eventually('echo-200 to echo', 10_000, () => echo('127.0.0.1', echoEndpoint.port, line)), line);
    const flagFile = (await run('docker', ['exec', running.get('echo-200-team-12')?.status?.containerId ?? '', 'cat', '/flag/flag.txt'])).stdout;
    assert.match(flagFile, /^CTF\{[0-9a-f]{32}\}\n$/);

    // The Challenges count them, as `kubectl get chal` shows.
    const counted = await eventually('the Challenges to count their running instances', 20_000, async () => {
      const listed = JSON.parse((await kubectl(['get', 'chal', '-n', NS, '-o', 'json'])).stdout) as { items: { metadata: { name: string }; status?: { instances?: { total?: number; running?: number } } }[] };
      const counts = Object.fromEntries(listed.items.map((item) => [item.metadata.name, item.status?.instances]));
      return counts['web-101']?.running === 2 && counts['echo-200']?.running === 1 ? counts : undefined;
    });
    assert.deepEqual(counted, { 'echo-200': { total: 1, running: 1 }, 'web-101': { total: 2, running: 2 } });
  });

  test("the README's example (Using ctfleet: a Challenge, an instance of it, and the direct form) is accepted by the API server as written", async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Using ctfleet'), readme.indexOf('\n## ', readme.indexOf('## Using ctfleet') + 5));
    const [main, direct] = [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
    assert.match(main ?? '', /kind: Challenge\b[\s\S]*kind: ChallengeInstance[\s\S]*challengeRef: \{ name: web-101 \}/, 'the primary example is a Challenge and an instance of it');
    assert.match(direct ?? '', /^spec: \{.*image: /m, 'the direct form is shown too');
    // In this test's namespace, on the server, without keeping anything (the samples use the same names).
    const objects = `${(main ?? '').replaceAll(`namespace: ${SAMPLE_NAMESPACE}`, `namespace: ${NS}`)}---\napiVersion: ctfleet.io/v1alpha1\nkind: ChallengeInstance\nmetadata: { name: readme-direct, namespace: ${NS} }\n${direct ?? ''}`;
    const result = await kubectl(['apply', '--dry-run=server', '-f', '-'], objects);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.match(/\(server dry run\)$/gm)?.length, 3, result.stdout);
  });

  test('the log is clean', async () => {
    await deleteInstancesAndChallenges(NS);
    await ctfleet.stop();
    const { lines, problems } = logProblems(ctfleet.logFile);
    assert.ok(lines > 0);
    assert.deepEqual(problems, []);
  });
});
