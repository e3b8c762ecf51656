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
import { kubectl, isRunning, type RawInstance } from '../support/ctfleet.ts';
import { Scenario } from '../support/scenario.ts';
import { eventually, freePort, stackConfig } from '../support/stack.ts';

// Issue 12's "how it is shown" for flags, on the real stack: per-team flags differ
// across teams, are the same after the instance's container is re-created and
// after ctfleet restarts, are in the container and nowhere else (resources,
// Events, the log, metrics, Redis and its job payloads, bull-board's JSON, the
// dashboard, read-token API answers), and /v1/flags/verify accepts a team's own flag and
// refuses another team's.

const run = promisify(execFile);
const ADMIN = { user: 'organiser', token: `admin-${randomBytes(12).toString('hex')}` };
const VIEWER = { user: 'scoreboard', token: `read-${randomBytes(12).toString('hex')}` };
const KEY = randomBytes(48);

describe('per-team flags, from the container and nowhere else', () => {
  const tokens = join(mkdtempSync(join(tmpdir(), 'ctfleet-flags-')), 'tokens');
  writeFileSync(tokens, `${ADMIN.user}:admin:${ADMIN.token}\n${VIEWER.user}:read:${VIEWER.token}\n`);
  const scenario = new Scenario('flags', 16, { CTFLEET_API_TOKENS_FILE: tokens });
  let apiPort = 0;
  let httpPort = 0;
  const flags = new Map<string, string>();
  const base = (): string => `http://127.0.0.1:${apiPort}`;

  const start = (): void => {
    scenario.start('all', { CTFLEET_HTTP_PORT: String(httpPort), CTFLEET_API_PORT: String(apiPort), CTFLEET_API_NAMESPACE: scenario.namespace, CTFLEET_FLAG_KEY_SECRET: `${scenario.namespace}/flag-key` });
  };
  const running = (name: string): Promise<RawInstance> => scenario.instances.waitFor(scenario.namespace, name, 'to run', isRunning, 60_000);
  const flagIn = async (name: string): Promise<string> => {
    const instance = await running(name);
    return (await run('docker', ['exec', instance.status?.containerId ?? '', 'sh', '-c', 'printf %s "$FLAG"'])).stdout;
  };
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
    const challenge = {
      apiVersion: 'ctfleet.io/v1alpha1',
      kind: 'Challenge',
      metadata: { name: 'web', namespace: scenario.namespace },
      spec: { image: 'ctfleet-test/web:1', imagePullPolicy: 'Never', ports: [{ name: 'http', containerPort: 8080 }], resources: { cpu: '250m', memory: '64Mi', pids: 64 }, flag: { kind: 'PerTeam', format: 'CTF{%s}', delivery: 'Env' } },
    };
    const instance = (team: string): unknown => ({ apiVersion: 'ctfleet.io/v1alpha1', kind: 'ChallengeInstance', metadata: { name: `web-${team}`, namespace: scenario.namespace }, spec: { team, challengeRef: { name: 'web' } } });
    const applied = await kubectl(['apply', '-f', '-'], [challenge, instance('team-a'), instance('team-b')].map((object) => JSON.stringify(object)).join('\n'));
    assert.equal(applied.code, 0, applied.stderr);
    start();
  });

  after(() => scenario.cleanup());

  test('two teams of one challenge get different flags, in their containers', async () => {
    flags.set('team-a', await flagIn('web-team-a'));
    flags.set('team-b', await flagIn('web-team-b'));
    assert.match(flags.get('team-a') ?? '', /^CTF\{[0-9a-f]{32}\}$/);
    assert.match(flags.get('team-b') ?? '', /^CTF\{[0-9a-f]{32}\}$/);
    assert.notEqual(flags.get('team-a'), flags.get('team-b'));
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
      ['bull-board queues', await page('/dashboard/queues/api/queues', ADMIN)],
      ['GET /v1/instances', (await call('/v1/instances', VIEWER)).text],
      ['GET /v1/instances/team-a/web', (await call('/v1/instances/team-a/web', VIEWER)).text],
      ['GET /v1/challenges', (await call('/v1/challenges', VIEWER)).text],
      ['metrics', await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()],
    ];
    for (const file of scenario.logFiles()) texts.push([`log ${file}`, readFileSync(file, 'utf8')]);
    const redis = new Redis(stackConfig().redis.url);
    try {
      for (const key of await redis.keys(`${scenario.env.CTFLEET_REDIS_PREFIX ?? ''}*`)) {
        const type = await redis.type(key);
        if (type === 'hash') texts.push([`redis ${key}`, JSON.stringify(await redis.hgetall(key))]);
        else if (type === 'string') texts.push([`redis ${key}`, (await redis.get(key)) ?? '']);
        else if (type === 'list') texts.push([`redis ${key}`, JSON.stringify(await redis.lrange(key, 0, -1))]);
        else if (type === 'zset') texts.push([`redis ${key}`, JSON.stringify(await redis.zrange(key, '0', '-1'))]);
      }
    } finally {
      redis.disconnect();
    }
    // The controls: the places searched are real and talk about these instances.
    assert.ok(texts.some(([where, text]) => where.startsWith('redis') && text.includes('start')), 'job payloads were searched');
    assert.ok(texts.some(([where, text]) => where === 'dashboard' && text.includes('team-a')));
    assert.ok(texts.some(([where, text]) => where === 'metrics' && text.includes('ctfleet_jobs_total')));
    assert.ok(texts.some(([where, text]) => where === 'bull-board completed starts' && text.includes('"jobs"')));
    for (const flag of flags.values()) {
      const part = /^CTF\{(.*)\}$/.exec(flag)?.[1] ?? flag;
      for (const [where, text] of texts) assert.ok(!text.includes(part), `a flag shows in ${where}`);
    }
  });
});
