import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { deleteRedisKeys, isRunning, kubectl, type RawInstance } from '../support/ctfleet.ts';
import { Scenario } from '../support/scenario.ts';
import { eventually, freePort, stackConfig } from '../support/stack.ts';

// Issue 12's "how it is shown" for flags, on the real stack: per-team flags differ
// across teams, are the same after the instance's container is re-created, after
// the instance is stopped and started, and after ctfleet restarts; flags of every
// kind (PerTeam, PerInstance, Static) are in the container and nowhere else
// (resources, Events, the log, metrics, Redis keys of every type with the job
// payloads and BullMQ's event streams, bull-board's JSON, the dashboard,
// read-token API answers); and /v1/flags/verify accepts a team's own flag and
// refuses another team's.

const run = promisify(execFile);
const ADMIN = { user: 'organiser', token: `admin-${randomBytes(12).toString('hex')}` };
const VIEWER = { user: 'scoreboard', token: `read-${randomBytes(12).toString('hex')}` };
const KEY = randomBytes(48);
/** The secret part of the Static flag, in the organisers' Secret. */
const STATIC_PART = randomBytes(16).toString('hex');

describe('per-team flags, from the container and nowhere else', () => {
  const tokens = join(mkdtempSync(join(tmpdir(), 'ctfleet-flags-')), 'tokens');
  writeFileSync(tokens, `${ADMIN.user}:admin:${ADMIN.token}\n${VIEWER.user}:read:${VIEWER.token}\n`);
  const scenario = new Scenario('flags', 16, { CTFLEET_API_TOKENS_FILE: tokens });
  let apiPort = 0;
  let httpPort = 0;
  /** PerTeam flags of web, by team. */
  const flags = new Map<string, string>();
  /** The PerInstance (box-team-a) and Static (static-team-a) flags. */
  const others = new Map<string, string>();
  const base = (): string => `http://127.0.0.1:${apiPort}`;

  const start = (): void => {
    scenario.start('all', { CTFLEET_HTTP_PORT: String(httpPort), CTFLEET_API_PORT: String(apiPort), CTFLEET_API_NAMESPACE: scenario.namespace, CTFLEET_FLAG_KEY_SECRET: `${scenario.namespace}/flag-key` });
  };
  const running = (name: string): Promise<RawInstance> => scenario.instances.waitFor(scenario.namespace, name, 'to run', isRunning, 60_000);
  const flagIn = async (name: string, script = 'printf %s "$FLAG"'): Promise<string> => {
    const instance = await running(name);
    return (await run('docker', ['exec', instance.status?.containerId ?? '', 'sh', '-c', script])).stdout;
  };
  const setDesiredState = async (name: string, desiredState: 'Running' | 'Stopped'): Promise<void> => {
    const patched = await kubectl(['patch', 'chi', name, '-n', scenario.namespace, '--type=merge', '-p', JSON.stringify({ spec: { desiredState } })]);
    assert.equal(patched.code, 0, patched.stderr);
  };
  const stopped = (name: string): Promise<RawInstance> =>
    scenario.instances.waitFor(scenario.namespace, name, 'to stop', (instance) => instance.status?.phase === 'Stopped' && instance.status.observedGeneration === instance.metadata.generation, 60_000);
  const call = async (path: string, who: { token: string }, body?: unknown): Promise<{ status: number; text: string }> => {
    const response = await fetch(`${base()}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${who.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, text: await response.text() };
  };
  const page = async (path: string, who: { user: string; token: string }): Promise<string> =>
    (await fetch(`${base()}${path}`, { headers: { authorization: `Basic ${Buffer.from(`${who.user}:${who.token}`).toString('base64')}` } })).text();

  before(async () => {
    await scenario.prepare();
    apiPort = await freePort();
    httpPort = await freePort();
    const core = scenario.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedSecret({ namespace: scenario.namespace, body: { metadata: { name: 'flag-key' }, data: { key: KEY.toString('base64') } } });
    await core.createNamespacedSecret({ namespace: scenario.namespace, body: { metadata: { name: 'organisers' }, data: { flag: Buffer.from(STATIC_PART).toString('base64') } } });
    const challenge = (name: string, flag: Record<string, unknown>): unknown => ({
      apiVersion: 'ctfleet.io/v1alpha1',
      kind: 'Challenge',
      metadata: { name, namespace: scenario.namespace },
      spec: { image: 'ctfleet-test/web:1', imagePullPolicy: 'Never', ports: [{ name: 'http', containerPort: 8080 }], resources: { cpu: '250m', memory: '64Mi', pids: 64 }, flag },
    });
    // Named <challenge>-<team>, as the platform API names them, so /v1/instances/<team>/<challenge> finds each.
    const instance = (name: string, team: string): unknown => ({ apiVersion: 'ctfleet.io/v1alpha1', kind: 'ChallengeInstance', metadata: { name: `${name}-${team}`, namespace: scenario.namespace }, spec: { team, challengeRef: { name } } });
    const objects = [
      challenge('web', { kind: 'PerTeam', format: 'CTF{%s}', delivery: 'Env' }),
      challenge('box', { kind: 'PerInstance', format: 'CTF{%s}', delivery: 'File', path: '/flag/flag.txt' }),
      challenge('static', { kind: 'Static', format: 'CTF{%s}', delivery: 'Env', static: { secretKeyRef: { name: 'organisers', key: 'flag' } } }),
      instance('web', 'team-a'),
      instance('web', 'team-b'),
      instance('box', 'team-a'),
      instance('static', 'team-a'),
    ];
    const applied = await kubectl(['apply', '-f', '-'], objects.map((object) => JSON.stringify(object)).join('\n'));
    assert.equal(applied.code, 0, applied.stderr);
    start();
  });

  after(async () => {
    await scenario.cleanup();
    // After the cleanup: its ctfleet writes delete jobs under the prefix too.
    await deleteRedisKeys(scenario.env.CTFLEET_REDIS_PREFIX ?? '');
  });

  test('two teams of one challenge get different flags, in their containers', async () => {
    flags.set('team-a', await flagIn('web-team-a'));
    flags.set('team-b', await flagIn('web-team-b'));
    assert.match(flags.get('team-a') ?? '', /^CTF\{[0-9a-f]{32}\}$/);
    assert.match(flags.get('team-b') ?? '', /^CTF\{[0-9a-f]{32}\}$/);
    assert.notEqual(flags.get('team-a'), flags.get('team-b'));
  });

  test('a PerInstance flag is in its file and a Static flag comes from the organisers\' Secret', async () => {
    const perInstance = await flagIn('box-team-a', 'cat /flag/flag.txt');
    assert.match(perInstance, /^CTF\{[0-9a-f]{32}\}\n$/);
    others.set('box-team-a', perInstance.trim());
    assert.equal(await flagIn('static-team-a'), `CTF{${STATIC_PART}}`);
    others.set('static-team-a', `CTF{${STATIC_PART}}`);
  });

  test("a team's flag is the same after its container is re-created and after ctfleet restarts", async () => {
    const first = await running('web-team-a');
    await scenario.docker.getContainer(first.status?.containerId ?? '').remove({ force: true });
    const recreated = await eventually('a new container for team-a', 60_000, async () => {
      const instance = await scenario.instances.get(scenario.namespace, 'web-team-a');
      return instance !== undefined && isRunning(instance) && instance.status?.containerId !== first.status?.containerId ? instance : undefined;
    });
    assert.equal((await run('docker', ['exec', recreated.status?.containerId ?? '', 'sh', '-c', 'printf %s "$FLAG"'])).stdout, flags.get('team-a'));

    await scenario.stopAll();
    await scenario.docker.getContainer(recreated.status?.containerId ?? '').remove({ force: true });
    start();
    const again = await eventually('team-a running in a container made by the new ctfleet', 90_000, async () => {
      const instance = await scenario.instances.get(scenario.namespace, 'web-team-a');
      return instance !== undefined && isRunning(instance) && instance.status?.containerId !== recreated.status?.containerId ? instance : undefined;
    });
    assert.equal((await run('docker', ['exec', again.status?.containerId ?? '', 'sh', '-c', 'printf %s "$FLAG"'])).stdout, flags.get('team-a'));
  });

  test("a team's flag is the same after its instance is stopped and started again (PerTeam; PerInstance with its stopped container removed meanwhile)", async () => {
    const web = await running('web-team-a');
    const box = await running('box-team-a');
    await setDesiredState('web-team-a', 'Stopped');
    await setDesiredState('box-team-a', 'Stopped');
    const webStopped = await stopped('web-team-a');
    await stopped('box-team-a');
    const inspected = await scenario.docker.getContainer(web.status?.containerId ?? '').inspect().catch(() => undefined);
    assert.notEqual(inspected?.State.Running, true, `web-team-a's container does not run while the instance is Stopped (${webStopped.status?.containerId})`);
    // Gone for good while stopped: the start that follows makes a new container and writes the flag file again.
    await scenario.docker.getContainer(box.status?.containerId ?? '').remove({ force: true });
    await setDesiredState('web-team-a', 'Running');
    await setDesiredState('box-team-a', 'Running');
    assert.equal(await flagIn('web-team-a'), flags.get('team-a'));
    const restarted = await running('box-team-a');
    assert.notEqual(restarted.status?.containerId, box.status?.containerId, 'box-team-a runs in a new container');
    assert.equal((await flagIn('box-team-a', 'cat /flag/flag.txt')).trim(), others.get('box-team-a'));
  });

  test("/v1/flags/verify accepts a team's own flag and refuses another team's; read tokens may not ask", async () => {
    await eventually('the platform API', 30_000, async () => ((await fetch(`${base()}/v1/challenges`, { headers: { authorization: `Bearer ${VIEWER.token}` } }).catch(() => undefined))?.status === 200 ? true : undefined));
    const own = await call('/v1/flags/verify', ADMIN, { team: 'team-a', challenge: 'web', flag: flags.get('team-a') });
    assert.deepEqual([own.status, JSON.parse(own.text)], [200, { correct: true }]);
    const other = await call('/v1/flags/verify', ADMIN, { team: 'team-a', challenge: 'web', flag: flags.get('team-b') });
    assert.deepEqual([other.status, JSON.parse(other.text)], [200, { correct: false }]);
    const reader = await call('/v1/flags/verify', VIEWER, { team: 'team-b', challenge: 'web', flag: flags.get('team-b') });
    assert.equal(reader.status, 403);
  });

  test('no flag anywhere else: resources, Events, logs, metrics, Redis and job payloads, bull-board, the dashboard, read-token answers', async () => {
    const texts: [string, string][] = [
      ['resources', (await kubectl(['get', 'chi,chal', '-n', scenario.namespace, '-o', 'json'])).stdout],
      ['events', (await kubectl(['get', 'events', '-n', scenario.namespace, '-o', 'json'])).stdout],
      ['dashboard', await page('/dashboard/', VIEWER)],
      ['dashboard challenges', await page('/dashboard/challenges/', VIEWER)],
      ['bull-board completed starts', await page('/dashboard/queues/api/queues?activeQueue=start&status=completed&page=1', ADMIN)],
      ['bull-board completed node jobs', await page(`/dashboard/queues/api/queues?activeQueue=node.${scenario.node('a')}&status=completed&page=1`, ADMIN)],
      ['bull-board queues', await page('/dashboard/queues/api/queues', ADMIN)],
      ['GET /v1/instances', (await call('/v1/instances', VIEWER)).text],
      ['GET /v1/instances/team-a/web', (await call('/v1/instances/team-a/web', VIEWER)).text],
      ['GET /v1/instances/team-a/box', (await call('/v1/instances/team-a/box', VIEWER)).text],
      ['GET /v1/instances/team-a/static', (await call('/v1/instances/team-a/static', VIEWER)).text],
      ['GET /v1/challenges', (await call('/v1/challenges', VIEWER)).text],
      ['metrics', await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()],
    ];
    for (const file of scenario.logFiles()) texts.push([`log ${file}`, readFileSync(file, 'utf8')]);
    const redis = new Redis(stackConfig().redis.url);
    const unread: string[] = [];
    try {
      for (const key of await redis.keys(`${scenario.env.CTFLEET_REDIS_PREFIX ?? ''}*`)) {
        const type = await redis.type(key);
        if (type === 'hash') texts.push([`redis ${key}`, JSON.stringify(await redis.hgetall(key))]);
        else if (type === 'string') texts.push([`redis ${key}`, (await redis.get(key)) ?? '']);
        else if (type === 'list') texts.push([`redis ${key}`, JSON.stringify(await redis.lrange(key, 0, -1))]);
        else if (type === 'zset') texts.push([`redis ${key}`, JSON.stringify(await redis.zrange(key, '0', '-1'))]);
        else if (type === 'set') texts.push([`redis ${key}`, JSON.stringify(await redis.smembers(key))]);
        else if (type === 'stream') texts.push([`redis stream ${key}`, JSON.stringify(await redis.xrange(key, '-', '+'))]);
        else if (type !== 'none') unread.push(`${key} (${type})`);
      }
    } finally {
      redis.disconnect();
    }
    // The controls: the places searched are real and talk about these instances.
    assert.deepEqual(unread, [], 'every Redis key was read');
    assert.ok(texts.some(([where, text]) => where.startsWith('redis') && text.includes('start')), 'job payloads were searched');
    assert.ok(texts.some(([where, text]) => where.startsWith('redis stream') && text.includes('completed')), 'BullMQ event streams were searched');
    assert.ok(texts.some(([where, text]) => where === 'dashboard' && text.includes('team-a')));
    assert.ok(texts.some(([where, text]) => where === 'metrics' && text.includes('ctfleet_jobs_total')));
    assert.ok(texts.some(([where, text]) => where === 'bull-board completed starts' && text.includes('"jobs"')));
    // Each page searched answered about what it was asked for (a 404 or an empty page holds no flag either).
    const said = (where: string): string => texts.find(([name]) => name === where)?.[1] ?? '';
    assert.match(said('bull-board completed node jobs'), /"jobs"/, 'the node queue page lists jobs');
    for (const [where, name] of [['GET /v1/instances/team-a/web', 'web'], ['GET /v1/instances/team-a/box', 'box'], ['GET /v1/instances/team-a/static', 'static']] as const) {
      assert.match(said(where), new RegExp(`"team":"team-a"[^]*"challenge":"${name}"|"challenge":"${name}"[^]*"team":"team-a"`), `${where} answers about team-a's ${name}`);
    }
    assert.equal(others.size, 2, 'the PerInstance and Static flags were read from their containers');
    for (const flag of [...flags.values(), ...others.values()]) {
      const part = /^CTF\{(.*)\}$/.exec(flag)?.[1] ?? flag;
      for (const [where, text] of texts) assert.ok(!text.includes(part), `a flag shows in ${where}`);
    }
  });
});
