import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type Docker from 'dockerode';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { challengeInstanceManifest, challengeManifest, containersOf, CtfleetProcess, isRunning, kubectl, prepareNamespace, ROOT, type Instances, type RawInstance } from '../support/ctfleet.ts';
import { logProblems } from '../support/logs.ts';
import { eventually, freePort, stackConfig, uniqueSuffix } from '../support/stack.ts';

// The challenges view of the dashboard and `ctfleet challenges`, over a real
// `ctfleet all`: two Challenges of a fresh namespace, instances of each in
// several phases, and instances of a Challenge that does not exist.

const suffix = uniqueSuffix();
const NS = `e2e-chview-${suffix}`;
const PREFIX = `{ctfleet-e2e-chview-${suffix}}`;
const VIEWER = { user: 'viewer', token: 'viewer-token-0123456789abcdef' };
const FLAG = 'CTF{the-challenges-view-must-never-show-this}';

const basic = `Basic ${Buffer.from(`${VIEWER.user}:${VIEWER.token}`).toString('base64')}`;

function challenge(name: string, extra: Record<string, unknown> = {}): string {
  return challengeManifest(NS, name, extra);
}

function instanceOf(challengeName: string, team: string, extra: Record<string, unknown> = {}): string {
  return challengeInstanceManifest(NS, `${challengeName}-${team}`, team, challengeName, extra);
}

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'src/main.ts'), ...args], { env: { ...process.env, CTFLEET_REDIS_PREFIX: PREFIX }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

interface ChallengeJson {
  namespace: string;
  name: string;
  declared: boolean;
  image: string | null;
  flag: { kind: string; delivery: string } | null;
  instances: { total: number; running: number; phases: Record<string, number> };
}

describe('the challenges view: dashboard and CLI', () => {
  let docker: Docker;
  let instances: Instances;
  let ctfleet: CtfleetProcess;
  let base: string;

  const get = async (path: string, authorization: string | null = basic): Promise<{ status: number; text: string; headers: Headers }> => {
    const response = await fetch(`${base}${path}`, { headers: authorization === null ? {} : { authorization }, redirect: 'manual' });
    return { status: response.status, text: await response.text(), headers: response.headers };
  };

  before(async () => {
    docker = createDockerClient(stackConfig().docker);
    ({ instances } = await prepareNamespace(NS));
    const tokens = join(mkdtempSync(join(tmpdir(), 'ctfleet-chview-')), 'tokens');
    writeFileSync(tokens, `${VIEWER.user}:read:${VIEWER.token}\n`);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    ctfleet = new CtfleetProcess(
      'all',
      {
        CTFLEET_REDIS_PREFIX: PREFIX,
        CTFLEET_NAMESPACES: NS,
        CTFLEET_NODE_NAME: 'e2e-chview-node',
        CTFLEET_LEADER_ELECTION: 'false',
        CTFLEET_BIND_ADDRESS: '127.0.0.1',
        CTFLEET_ADVERTISE_ADDRESS: '127.0.0.1',
        CTFLEET_PORT_RANGE: '25300-25399',
        CTFLEET_API_TOKENS_FILE: tokens,
        CTFLEET_API_PORT: String(port),
        CTFLEET_API_NAMESPACE: NS,
      },
      `e2e-challenges-view-${suffix}`,
    );
    const secret = await kubectl(['create', 'secret', 'generic', 'web-101-flag', '-n', NS, `--from-literal=flag=${FLAG}`]);
    assert.equal(secret.code, 0, secret.stderr);
    const applied = await kubectl(['apply', '-f', '-'], [
      challenge('web-101', { flag: { kind: 'Static', delivery: 'File', static: { secretKeyRef: { name: 'web-101-flag', key: 'flag' } } } }),
      challenge('web-202'),
      instanceOf('web-101', 'team-1'),
      instanceOf('web-101', 'team-2'),
      instanceOf('web-202', 'team-1'),
      instanceOf('web-202', 'team-2', { desiredState: 'Stopped' }),
      instanceOf('ghost', 'team-1'),
    ].join('\n'));
    assert.equal(applied.code, 0, applied.stderr);
    await Promise.all(['web-101-team-1', 'web-101-team-2', 'web-202-team-1'].map((name) => instances.waitFor(NS, name, 'to run', isRunning, 90_000)));
    await instances.waitFor(NS, 'web-202-team-2', 'to be Stopped', (instance: RawInstance) => instance.status?.phase === 'Stopped', 30_000);
    await instances.waitFor(NS, 'ghost-team-1', 'to fail ChallengeNotFound', (instance: RawInstance) => instance.status?.phase === 'Failed' && instance.status.reason === 'ChallengeNotFound', 30_000);
    await eventually(`the dashboard at ${base}`, 30_000, async () => ((await fetch(`${base}/dashboard/challenges/`, { headers: { authorization: basic } }).catch(() => undefined))?.ok === true ? true : undefined));
  });

  after(async () => {
    await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    await ctfleet.stop();
    for (const container of await containersOf(docker, NS)) await docker.getContainer(container.Id).remove({ force: true });
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  test('a read token sees each Challenge with its image, flag kind and delivery and its instances per phase, and never the flag', async () => {
    const page = await get('/dashboard/challenges/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.ok(!page.text.includes(FLAG), 'the flag is not on the page');
    const row = (name: string, declared = true): string => {
      const found = new RegExp(`<tr data-namespace="${NS}" data-challenge="${name}" data-declared="${String(declared)}">([\\s\\S]*?)</tr>`).exec(page.text)?.[1];
      assert.ok(found !== undefined, `a row for ${name}`);
      return found;
    };
    const count = (html: string, phase: string): string | undefined => new RegExp(`data-phase="${phase}">(?:<span [^>]+>)?(\\d+)<`).exec(html)?.[1];

    const web101 = row('web-101');
    assert.match(web101, /<td>ctfleet-test\/web:1<\/td>/);
    assert.match(web101, /<td class="nowrap">Static · File<\/td>/);
    assert.match(web101, /generation 1/);
    assert.match(web101, /data-count="total">2</);
    assert.deepEqual([count(web101, 'Running'), count(web101, 'Failed')], ['2', '0']);

    const web202 = row('web-202');
    assert.match(web202, /<span class="muted">none<\/span>/, 'no flag');
    assert.deepEqual([count(web202, 'Running'), count(web202, 'Stopped')], ['1', '1']);

    const ghost = row('ghost', false);
    assert.match(ghost, /no Challenge/);
    assert.equal(count(ghost, 'Failed'), '1');
    assert.match(page.text, /<span id="summary">2 challenges · 5 instances, 3 running<\/span>/);
    assert.match(page.text, /signed in as viewer · <strong id="read-only">read-only<\/strong>/);
  });

  test('each challenge links to its instances on the instance page, which links back; the page needs a token', async () => {
    const page = await get('/dashboard/challenges/');
    const href = /<a href="([^"]+)">web-101<\/a>/.exec(page.text)?.[1]?.replaceAll('&#38;', '&');
    assert.equal(href, `/dashboard/?namespace=${NS}&challenge=web-101`);
    const filtered = await get(href);
    assert.equal(filtered.status, 200);
    const rows = [...filtered.text.matchAll(/<tr data-team="([^"]+)" data-challenge="([^"]+)" data-phase="([^"]+)">/g)].map((match) => match.slice(1).join('/'));
    assert.deepEqual(rows, ['team-1/web-101/Running', 'team-2/web-101/Running'], 'instances of a Challenge show the Challenge they name');
    assert.match(filtered.text, /<a href="\/dashboard\/challenges\/">Challenges<\/a>/);

    assert.equal((await get('/dashboard/challenges/', null)).status, 401);
    const redirect = await get('/dashboard/challenges');
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get('location'), '/dashboard/challenges/');
  });

  test('ctfleet challenges prints the same as a table and as JSON, never the flag; -n without a namespace exits 2', async () => {
    const json = await cli('challenges', '-n', NS, '-o', 'json');
    assert.equal(json.code, 0, json.stderr);
    assert.ok(!json.stdout.includes(FLAG));
    const { challenges } = JSON.parse(json.stdout) as { challenges: ChallengeJson[] };
    assert.deepEqual(challenges.map((view) => [view.name, view.declared, view.image, view.flag, view.instances.total, view.instances.running]), [
      ['ghost', false, null, null, 1, 0],
      ['web-101', true, 'ctfleet-test/web:1', { kind: 'Static', delivery: 'File' }, 2, 2],
      ['web-202', true, 'ctfleet-test/web:1', null, 2, 1],
    ]);
    assert.deepEqual([challenges[0]?.instances.phases.Failed, challenges[2]?.instances.phases.Stopped], [1, 1]);

    const table = await cli('challenges', '--namespace', NS);
    assert.equal(table.code, 0, table.stderr);
    assert.ok(!table.stdout.includes(FLAG));
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^NAMESPACE\s+NAME\s+IMAGE\s+FLAG\s+INSTANCES\s+RUNNING\s+STOPPED\s+FAILED\s+AGE$/);
    assert.match(lines[1] ?? '', new RegExp(`^${NS}\\s+ghost\\s+\\(no Challenge\\)\\s+-\\s+1\\s+0\\s+0\\s+1\\s+-$`));
    assert.match(lines[2] ?? '', new RegExp(`^${NS}\\s+web-101\\s+ctfleet-test/web:1\\s+Static/File\\s+2\\s+2\\s+0\\s+0\\s+\\d+[smh]`));
    assert.match(lines[3] ?? '', new RegExp(`^${NS}\\s+web-202\\s+ctfleet-test/web:1\\s+-\\s+2\\s+1\\s+1\\s+0\\s+\\d+[smh]`));

    const usage = await cli('challenges', '-n');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /challenges: -n needs a namespace/);
    const empty = await cli('challenges', '-n', `${NS}-none`);
    assert.deepEqual([empty.code, empty.stdout], [0, `No Challenges in namespace ${NS}-none.\n`]);
  });

  test('the log is clean', async () => {
    await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    await ctfleet.stop();
    const { lines, problems } = logProblems(ctfleet.logFile);
    assert.ok(lines > 0);
    assert.deepEqual(problems, []);
  });
});
