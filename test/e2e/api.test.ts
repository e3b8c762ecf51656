import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Ajv } from 'ajv';
import { KubeFlagSecrets } from '../../src/adapters/kubernetes/flag-secrets.ts';
import { ROUTES } from '../../src/api/routes.ts';
import { perTeamFlagPart, renderFlag } from '../../src/domain/flags.ts';
import { kubectl, ROOT, type CtfleetProcess } from '../support/ctfleet.ts';
import { Scenario } from '../support/scenario.ts';
import { eventually, freePort } from '../support/stack.ts';

// The platform API of a real `ctfleet all` against the stack: every endpoint and
// error case, with each response checked against the OpenAPI document in the repo.
// Organisers declare the Challenges (kubectl); the platform only names them, and
// checks teams' flags.
const ADMIN = 'admin-token-0123456789abcdef';
const READER = 'reader-token-0123456789abcdef';
/** The deployment's flag key: 64 bytes, as the chart generates one. */
const FLAG_KEY = 'k3y-of-the-e2e-api-test-0123456789abcdefghijklmnopqrstuvwxyzABCD';
const STATIC_FLAG = 'the-same-for-everyone-7f3c';
const VERIFY_RATE = 5;
const openapi = JSON.parse(readFileSync(join(ROOT, 'docs/api/openapi.json'), 'utf8')) as { paths: Record<string, Record<string, unknown>> };
const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
ajv.addSchema(openapi, 'openapi');

function conforms(schema: string, body: unknown): void {
  const validate = ajv.getSchema(`openapi#/components/schemas/${schema}`);
  assert.ok(validate, `the document defines ${schema}`);
  assert.ok(validate(body), `${schema}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(body)}`);
}

describe('platform API', () => {
  const tokens = join(mkdtempSync(join(tmpdir(), 'ctfleet-api-')), 'tokens');
  writeFileSync(tokens, `# name:role:token\nplatform:admin:${ADMIN}\nscoreboard:read:${READER}\n`);
  const scenario = new Scenario('api', 13, {
    CTFLEET_API_TOKENS_FILE: tokens,
    CTFLEET_API_MAX_INSTANCES_PER_TEAM: '2',
    CTFLEET_API_RATE_PER_MINUTE: '30',
    CTFLEET_API_VERIFY_RATE_PER_MINUTE: String(VERIFY_RATE),
  });
  let base: string;
  let health: string;
  let ctfleet: CtfleetProcess;
  /** Every flag a test handed to the API, right or wrong: none may reach a log. */
  const handedIn = new Set<string>();

  const call = async (method: string, path: string, options: { token?: string | null; body?: unknown; raw?: string } = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> => {
    const headers: Record<string, string> = {};
    const token = options.token === undefined ? ADMIN : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (options.body !== undefined || options.raw !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${base}${path}`, { method, headers, ...(options.raw !== undefined ? { body: options.raw } : options.body === undefined ? {} : { body: JSON.stringify(options.body) }) });
    const text = await response.text();
    assert.ok(!/\n\s+at /.test(text), `no stack trace in ${text}`);
    return { status: response.status, body: JSON.parse(text) as Record<string, unknown>, headers: response.headers };
  };
  const create = (team: string, challenge: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ team, challenge, ...extra });
  const verify = async (team: string, challenge: string, flag: string, token?: string | null): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> => {
    handedIn.add(flag);
    return call('POST', '/v1/flags/verify', { body: { team, challenge, flag }, ...(token === undefined ? {} : { token }) });
  };
  const expectCorrect = async (team: string, challenge: string, flag: string, correct: boolean, why: string): Promise<void> => {
    const result = await verify(team, challenge, flag);
    assert.equal(result.status, 200, `${why}: ${JSON.stringify(result.body)}`);
    conforms('FlagResult', result.body);
    assert.deepEqual(result.body, { correct }, why);
  };
  const perTeamFlag = (challenge: string, team: string): string => renderFlag('CTF{%s}', perTeamFlagPart(Buffer.from(FLAG_KEY), { namespace: scenario.namespace, challenge, team }));
  /** A Challenge of the test web image, as organisers declare one. */
  const challenge = (name: string, extra: Record<string, unknown> = {}): string =>
    JSON.stringify({
      apiVersion: 'ctfleet.io/v1alpha1',
      kind: 'Challenge',
      metadata: { name, namespace: scenario.namespace },
      spec: {
        image: 'ctfleet-test/web:1',
        imagePullPolicy: 'Never',
        ports: [{ name: 'http', containerPort: 8080 }],
        env: [{ name: 'GREETING', value: `hello from ${name}` }],
        resources: { cpu: '250m', memory: '64Mi', pids: 64 },
        lifetime: { defaultSeconds: 600, maxSeconds: 3600 },
        ...extra,
      },
    });
  const expectError = (result: { status: number; body: Record<string, unknown> }, status: number, code: string, message?: RegExp): void => {
    assert.equal(result.status, status, JSON.stringify(result.body));
    conforms('Error', result.body);
    const error = result.body.error as { code: string; message: string };
    assert.equal(error.code, code);
    if (message !== undefined) assert.match(error.message, message);
  };

  before(async () => {
    await scenario.prepare();
    const ns = scenario.namespace;
    for (const [name, key, value] of [['ctfleet-flag-key', 'key', FLAG_KEY], ['static-1-flag', 'flag', STATIC_FLAG]] as const) {
      const created = await kubectl(['create', 'secret', 'generic', name, '-n', ns, `--from-literal=${key}=${value}`]);
      assert.equal(created.code, 0, created.stderr);
    }
    const applied = await kubectl(
      ['apply', '-f', '-'],
      [
        challenge('web-101', { flag: { kind: 'PerTeam', format: 'CTF{%s}' } }),
        challenge('static-1', { flag: { kind: 'Static', format: 'CTF{%s}', static: { secretKeyRef: { name: 'static-1-flag', key: 'flag' } } } }),
        challenge('per-inst', { flag: { kind: 'PerInstance', format: 'inst{%s}', delivery: 'File' } }),
        challenge('plain'),
        challenge('lost-flag', { flag: { kind: 'Static', static: { secretKeyRef: { name: 'no-such-secret', key: 'flag' } } } }),
      ].join('\n'),
    );
    assert.equal(applied.code, 0, applied.stderr);
    const [port, healthPort] = [await freePort(), await freePort()];
    base = `http://127.0.0.1:${port}`;
    health = `http://127.0.0.1:${healthPort}`;
    ctfleet = scenario.start('all', { CTFLEET_API_PORT: String(port), CTFLEET_HTTP_PORT: String(healthPort), CTFLEET_API_NAMESPACE: ns, CTFLEET_FLAG_KEY_SECRET: `${ns}/ctfleet-flag-key` });
    await eventually('the API', 30_000, async () => ((await fetch(`${base}/v1/openapi.json`).catch(() => undefined))?.ok === true ? true : undefined));
  });
  after(() => scenario.cleanup());

  test('the public port serves only the API and the dashboard: /metrics, /readyz and /healthz are 404 there and served on the health port', async () => {
    for (const path of ['/metrics', '/readyz', '/healthz', '/metrics/', '/METRICS']) {
      const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });
      const text = await response.text();
      assert.equal(response.status, 404, `${path} on the public port: ${text.slice(0, 200)}`);
      assert.ok(!text.includes('ctfleet_'), `${path} on the public port shows no metric`);
    }
    const metrics = await fetch(`${health}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^# HELP ctfleet_/m);
    const ready = await eventually('/readyz on the health port', 30_000, async () => {
      const response = await fetch(`${health}/readyz`);
      return response.status === 200 ? ((await response.json()) as { checks: { name: string }[] }) : undefined;
    });
    assert.ok(ready.checks.some((check) => check.name.startsWith('api.')), `the API's checks are on the health port: ${JSON.stringify(ready.checks)}`);
    assert.equal((await fetch(`${health}/healthz`)).status, 200);
    assert.equal((await fetch(`${health}/v1/openapi.json`)).status, 404, 'and the health port serves no API');
    assert.equal((await fetch(`${health}/dashboard/`)).status, 404, 'nor the dashboard');
  });

  test('serves the OpenAPI document of the repo, and its paths are exactly the routes served', async () => {
    const served = await call('GET', '/v1/openapi.json', { token: null });
    assert.deepEqual(served.body, openapi);
    const documented = Object.entries(openapi.paths).flatMap(([path, item]) => Object.keys(item).filter((key) => ['get', 'post', 'put', 'patch', 'delete'].includes(key)).map((method) => `${method} ${path}`));
    assert.deepEqual(documented.sort(), ROUTES.map((route) => `${route.method} ${route.path}`).sort());
  });

  test('401 without or with a wrong token; 403 for a read-only token that writes or checks a flag', async () => {
    expectError(await call('GET', '/v1/instances', { token: null }), 401, 'Unauthorized');
    expectError(await call('GET', '/v1/instances', { token: 'wrong-token-0123456789' }), 401, 'Unauthorized');
    expectError(await call('POST', '/v1/instances', { token: READER, body: create('team-r', 'web-101') }), 403, 'Forbidden', /may only read/);
    expectError(await verify('team-r', 'web-101', perTeamFlag('web-101', 'team-r'), READER), 403, 'Forbidden');
    expectError(await verify('team-r', 'web-101', perTeamFlag('web-101', 'team-r'), null), 401, 'Unauthorized');
    assert.equal((await call('GET', '/v1/instances', { token: READER })).status, 200);
    assert.equal((await call('GET', '/v1/challenges', { token: READER })).status, 200);
  });

  test('GET /v1/challenges lists the Challenges of the namespace: ports, lifetime, flag kind and delivery, never an image, env or flag Secret', async () => {
    const listed = await call('GET', '/v1/challenges', { token: READER });
    assert.equal(listed.status, 200);
    const items = listed.body.items as Record<string, unknown>[];
    for (const item of items) conforms('Challenge', item);
    assert.deepEqual(items.map((item) => item.name), ['lost-flag', 'per-inst', 'plain', 'static-1', 'web-101']);
    assert.deepEqual(items.find((item) => item.name === 'web-101'), {
      name: 'web-101',
      ports: [{ name: 'http', protocol: 'TCP' }],
      lifetime: { defaultSeconds: 600, maxSeconds: 3600 },
      flag: { kind: 'PerTeam', delivery: 'Env' },
      instances: { total: 0, running: 0 },
      deleting: false,
      createdAt: items.find((item) => item.name === 'web-101')?.createdAt,
    });
    assert.deepEqual(items.find((item) => item.name === 'plain')?.flag, null);
    const text = JSON.stringify(listed.body);
    for (const hidden of ['ctfleet-test/web', 'GREETING', 'hello from', 'static-1-flag', STATIC_FLAG, 'CTF{']) assert.ok(!text.includes(hidden), `${hidden} is not shown`);
    expectError(await call('GET', '/v1/challenges?image=x'), 400, 'InvalidField', /^query\.image: is not a field/);
  });

  test('create is idempotent, the instance runs, and reads and lists conform to the document', async () => {
    const first = await call('POST', '/v1/instances', { body: create('team-a', 'web-101', { ttlSeconds: 300 }) });
    assert.equal(first.status, 201);
    assert.equal(first.headers.get('location'), '/v1/instances/team-a/web-101');
    conforms('Instance', first.body);
    const again = await call('POST', '/v1/instances', { body: create('team-a', 'web-101', { ttlSeconds: 300 }) });
    assert.equal(again.status, 200);
    assert.equal(again.body.name, first.body.name);

    const stored = JSON.parse((await kubectl(['get', 'challengeinstance', 'web-101-team-a', '-n', scenario.namespace, '-o', 'json'])).stdout) as { spec: Record<string, unknown> };
    assert.deepEqual(stored.spec, { team: 'team-a', challengeRef: { name: 'web-101' }, ttlSeconds: 300, desiredState: 'Running', priority: 0 }, 'the instance names its Challenge and nothing else');

    const ready = await eventually('the instance to be ready', 60_000, async () => {
      const read = await call('GET', '/v1/instances/team-a/web-101');
      return read.body.ready === true ? read : undefined;
    });
    conforms('Instance', ready.body);
    assert.equal(ready.body.challenge, 'web-101');
    const endpoint = (ready.body.endpoints as { url: string }[])[0];
    assert.equal(await (await fetch(endpoint?.url ?? '')).text().then((page) => page.includes('hello from web-101')), true, "the Challenge's container answers");
    assert.ok(!JSON.stringify(ready.body).includes('GREETING'), 'the env is never shown');
    // Running is the phase, which the controller sets a moment after the worker reports the container ready.
    const counted = await eventually('web-101 to count one running instance', 10_000, async () => {
      const items = (await call('GET', '/v1/challenges', { token: READER })).body.items as { name: string; instances: { total: number; running: number } }[] | undefined;
      const counts = items?.find((item) => item.name === 'web-101')?.instances;
      return counts?.running === 1 ? counts : undefined;
    });
    assert.deepEqual(counted, { total: 1, running: 1 });

    const byTeam = await call('GET', '/v1/instances?team=team-a');
    conforms('Instance', (byTeam.body.items as unknown[])[0]);
    assert.deepEqual((byTeam.body.items as { challenge: string }[]).map((item) => item.challenge), ['web-101']);
    const byChallenge = await call('GET', '/v1/instances?challenge=nothing-here');
    assert.deepEqual(byChallenge.body.items, []);
  });

  test('the platform names a challenge: a body with an image, ports or env is refused naming the field, and nothing is created', async () => {
    const direct = { image: 'ctfleet-test/web:1', imagePullPolicy: 'Never', ports: [{ name: 'http', containerPort: 8080 }], env: [{ name: 'GREETING', value: 'hi' }] };
    for (const field of ['image', 'ports', 'env']) {
      const refused = await call('POST', '/v1/instances', { body: create('team-d', 'web-101', { [field]: direct[field as keyof typeof direct] }) });
      expectError(refused, 400, 'InvalidField', new RegExp(`^${field}: is not a field of this request: the platform names a challenge`));
      assert.equal((refused.body.error as { field?: string }).field, field);
    }
    expectError(await call('POST', '/v1/instances', { body: create('team-d', 'no-such-challenge') }), 404, 'ChallengeNotFound', /^Challenge no-such-challenge does not exist in namespace /);
    const left = await kubectl(['get', 'challengeinstances', '-n', scenario.namespace, '-l', 'ctfleet.io/team=team-d', '-o', 'name']);
    assert.equal(left.stdout.trim(), '', 'no instance was made');
  });

  test('400 names the field and the rule', async () => {
    expectError(await call('POST', '/v1/instances', { body: create('Team_A', 'web-101') }), 400, 'InvalidField', /^team: must be a DNS label/);
    expectError(await call('POST', '/v1/instances', { body: create('team-a', 'web-101', { ttlSeconds: 1 }) }), 400, 'InvalidField', /^ttlSeconds: must be at least 5 seconds/);
    expectError(await call('POST', '/v1/instances', { body: create('team-e', 'web-101', { ttlSeconds: 7200 }) }), 400, 'InvalidField', /^ttlSeconds: must be at most 3600, the lifetime.maxSeconds of Challenge web-101$/);
    expectError(await call('POST', '/v1/instances', { body: create('team-a', 'web-101', { privileged: true }) }), 400, 'InvalidField', /^privileged: is not a field of this request$/);
    expectError(await call('POST', '/v1/instances', { raw: '{"team": ' }), 400, 'InvalidBody', /not valid JSON/);
    expectError(await call('GET', '/v1/instances?team=NO'), 400, 'InvalidField', /^query\.team: must be a DNS label/);
  });

  test('extend sets a new lifetime; unknown instances are 404', async () => {
    const extended = await call('POST', '/v1/instances/team-a/web-101/extend', { body: { ttlSeconds: 900 } });
    assert.equal(extended.status, 200);
    conforms('Instance', extended.body);
    assert.equal(extended.body.ttlSeconds, 900);
    expectError(await call('POST', '/v1/instances/team-a/web-101/extend', { body: { ttlSeconds: 'long' } }), 400, 'InvalidField', /^ttlSeconds:/);
    expectError(await call('POST', '/v1/instances/team-a/web-101/extend', { body: { ttlSeconds: 7200 } }), 400, 'InvalidField', /^ttlSeconds: must be at most 3600, the lifetime.maxSeconds of Challenge web-101$/);
    const ttl = await kubectl(['get', 'challengeinstance', 'web-101-team-a', '-n', scenario.namespace, '-o', 'jsonpath={.spec.ttlSeconds}']);
    assert.equal(ttl.stdout, '900', 'a refused extension changes nothing');
    expectError(await call('POST', '/v1/instances/team-z/none/extend', { body: { ttlSeconds: 900 } }), 404, 'NotFound');
    expectError(await call('GET', '/v1/instances/team-z/none'), 404, 'NotFound');
    expectError(await call('GET', '/v1/nothing'), 404, 'NotFound');
  });

  test('a team over its instance limit gets 429 with Retry-After', async () => {
    assert.equal((await call('POST', '/v1/instances', { body: create('team-b', 'web-101') })).status, 201);
    assert.equal((await call('POST', '/v1/instances', { body: create('team-b', 'plain') })).status, 201);
    const third = await call('POST', '/v1/instances', { body: create('team-b', 'static-1') });
    expectError(third, 429, 'TeamLimit', /limit 2/);
    assert.match(third.headers.get('retry-after') ?? '', /^\d+$/);
  });

  test('start/stop spam from one team is rate limited with 429 and Retry-After; other teams are not', async () => {
    const results = [];
    for (let i = 0; i < 35; i += 1) results.push(await call('GET', '/v1/instances/team-spam/web'));
    const limited = results.filter((result) => result.status === 429);
    assert.ok(limited.length >= 4, `${limited.length} of 35 requests were limited`);
    expectError(limited[0] ?? { status: 0, body: {} }, 429, 'RateLimited');
    assert.match(limited[0]?.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    assert.equal((await call('GET', '/v1/instances/team-a/web-101')).status, 200);
  });

  test('listing every instance is rate limited per token', async () => {
    const results = [];
    for (let i = 0; i < 35; i += 1) results.push(await call('GET', '/v1/instances'));
    const limited = results.filter((result) => result.status === 429);
    assert.ok(limited.length >= 4, `${limited.length} of 35 listings were limited`);
    expectError(limited[0] ?? { status: 0, body: {} }, 429, 'RateLimited', /token /);
    assert.equal((await call('GET', '/v1/instances?team=team-a')).status, 200, 'a team\'s own bucket is not spent by listings');
  });

  test('delete answers 202 and the instance goes; deleting what is not there is 404', async () => {
    const deleted = await call('DELETE', '/v1/instances/team-b/plain');
    assert.equal(deleted.status, 202);
    assert.deepEqual(deleted.body, { deleting: true });
    await eventually('team-b/plain to be gone', 60_000, async () => ((await call('GET', '/v1/instances/team-b/plain')).status === 404 ? true : undefined));
    expectError(await call('DELETE', '/v1/instances/team-b/plain'), 404, 'NotFound');
    assert.equal((await call('POST', '/v1/instances', { body: create('team-b', 'static-1') })).status, 201, 'the freed slot can be used');
  });

  test("PerTeam: verify accepts each team's own flag and refuses another team's, with {correct} only", async () => {
    await expectCorrect('team-f1', 'web-101', perTeamFlag('web-101', 'team-f1'), true, "team-f1's own flag");
    await expectCorrect('team-f2', 'web-101', perTeamFlag('web-101', 'team-f2'), true, "team-f2's own flag");
    await expectCorrect('team-f1', 'web-101', perTeamFlag('web-101', 'team-f2'), false, "team-f2's flag handed in by team-f1");
    await expectCorrect('team-f1', 'web-101', perTeamFlag('web-101', 'team-f1').toUpperCase(), false, 'compared exactly');
  });

  test("Static: every team's flag is the organisers' one; PerInstance: the part of the team's own instance, once it has one", async () => {
    await expectCorrect('team-s1', 'static-1', `CTF{${STATIC_FLAG}}`, true, 'the static flag');
    await expectCorrect('team-s2', 'static-1', `CTF{${STATIC_FLAG}}`, true, 'the same for another team');
    await expectCorrect('team-s1', 'static-1', STATIC_FLAG, false, 'without its format');

    await expectCorrect('team-i1', 'per-inst', 'inst{00000000000000000000000000000000}', false, 'no instance: no flag was handed out');
    const created = await call('POST', '/v1/instances', { body: create('team-i1', 'per-inst') });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const uid = (await kubectl(['get', 'challengeinstance', 'per-inst-team-i1', '-n', scenario.namespace, '-o', 'jsonpath={.metadata.uid}'])).stdout;
    // As the worker does when it starts the container: get or create the instance's flag Secret.
    const store = new KubeFlagSecrets(scenario.kubeConfig, { keySecret: { namespace: scenario.namespace, name: 'ctfleet-flag-key' } });
    const flag = renderFlag('inst{%s}', await store.instanceFlagPart({ namespace: scenario.namespace, name: 'per-inst-team-i1', uid }));
    await expectCorrect('team-i1', 'per-inst', flag, true, "the instance's own flag");
    await expectCorrect('team-i2', 'per-inst', flag, false, 'handed in by a team without an instance');
  });

  test('verify: an unknown challenge is 404 ChallengeNotFound, one without a flag 404 NoFlag, an unreadable flag 503, a bad body 400 without the flag in it', async () => {
    expectError(await verify('team-n', 'no-such-challenge', 'CTF{x}'), 404, 'ChallengeNotFound');
    expectError(await verify('team-n', 'plain', 'CTF{x}'), 404, 'NoFlag', /^Challenge plain has no flag\.$/);
    const lost = await verify('team-n', 'lost-flag', 'flag{x}');
    expectError(lost, 503, 'FlagUnavailable', /^The flag of Challenge lost-flag could not be read \(FlagSecretInvalid\); the API's log says why\.$/);
    const tooLong = `CTF{${'9'.repeat(5000)}}`;
    handedIn.add(tooLong);
    const refused = await call('POST', '/v1/flags/verify', { body: { team: 'team-n2', challenge: 'web-101', flag: tooLong } });
    expectError(refused, 400, 'InvalidField', /^flag: must be at most 4096 characters$/);
    assert.ok(!JSON.stringify(refused.body).includes('9999'), 'the flag is not quoted');
    expectError(await call('POST', '/v1/flags/verify', { body: { team: 'team-n2', challenge: 'web-101' } }), 400, 'InvalidField', /^flag: /);
  });

  test('flag checks are rate limited per team, in a bucket of their own: 429 with Retry-After; other teams are not', async () => {
    const results = [];
    for (let i = 0; i < VERIFY_RATE + 3; i += 1) results.push(await verify('team-g', 'web-101', `CTF{guess-${String(i)}}`));
    const limited = results.filter((result) => result.status === 429);
    assert.ok(limited.length >= 3, `${limited.length} of ${results.length} checks were limited`);
    assert.ok(results.slice(0, VERIFY_RATE).every((result) => result.status === 200 && result.body.correct === false), 'the first ones were answered');
    expectError(limited[0] ?? { status: 0, body: {} }, 429, 'RateLimited', /^Too many flag checks for team team-g; retry in \d+ s\.$/);
    assert.match(limited[0]?.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    expectError(await verify('team-g', 'web-101', perTeamFlag('web-101', 'team-g')), 429, 'RateLimited');
    await expectCorrect('team-g2', 'web-101', perTeamFlag('web-101', 'team-g2'), true, "another team's bucket is full");
    assert.equal((await call('GET', '/v1/instances?team=team-g')).status, 200, "the team's other requests have their own bucket");
  });

  test("no flag handed in, right or wrong, and no team's expected flag reaches ctfleet's log", () => {
    const log = readFileSync(ctfleet.logFile, 'utf8');
    assert.match(log, /Checked a flag of team team-f1 for Challenge .*\/web-101: correct/);
    const secrets = new Set([...handedIn, STATIC_FLAG, FLAG_KEY, ...['team-f1', 'team-f2', 'team-g', 'team-g2'].map((team) => perTeamFlagPart(Buffer.from(FLAG_KEY), { namespace: scenario.namespace, challenge: 'web-101', team }))]);
    for (const secret of secrets) assert.ok(!log.includes(secret), `${secret.slice(0, 12)}… is not in the log`);
  });

  scenario.declareLogTest();
});
