import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Ajv } from 'ajv';
import { ROUTES } from '../../src/api/routes.ts';
import { ROOT } from '../support/ctfleet.ts';
import { Scenario } from '../support/scenario.ts';
import { eventually, freePort } from '../support/stack.ts';

// The platform API of a real `ctfleet all` against the stack: every endpoint and
// error case, with each response checked against the OpenAPI document in the repo.
const ADMIN = 'admin-token-0123456789abcdef';
const READER = 'reader-token-0123456789abcdef';
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
  const scenario = new Scenario('api', 13, { CTFLEET_API_TOKENS_FILE: tokens, CTFLEET_API_MAX_INSTANCES_PER_TEAM: '2', CTFLEET_API_RATE_PER_MINUTE: '30' });
  let base: string;
  let health: string;

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
  const create = (team: string, challenge: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    team,
    challenge,
    image: 'ctfleet-test/web:1',
    imagePullPolicy: 'Never',
    ports: [{ name: 'http', containerPort: 8080 }],
    env: [{ name: 'GREETING', value: `hello ${team}` }],
    ...extra,
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
    const [port, healthPort] = [await freePort(), await freePort()];
    base = `http://127.0.0.1:${port}`;
    health = `http://127.0.0.1:${healthPort}`;
    scenario.start('all', { CTFLEET_API_PORT: String(port), CTFLEET_HTTP_PORT: String(healthPort), CTFLEET_API_NAMESPACE: scenario.namespace });
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

  test('401 without or with a wrong token; 403 for a read-only token that writes', async () => {
    expectError(await call('GET', '/v1/instances', { token: null }), 401, 'Unauthorized');
    expectError(await call('GET', '/v1/instances', { token: 'wrong-token-0123456789' }), 401, 'Unauthorized');
    expectError(await call('POST', '/v1/instances', { token: READER, body: create('team-r', 'web') }), 403, 'Forbidden', /may only read/);
    assert.equal((await call('GET', '/v1/instances', { token: READER })).status, 200);
  });

  test('create is idempotent, the instance runs, and reads and lists conform to the document', async () => {
    const first = await call('POST', '/v1/instances', { body: create('team-a', 'web-101', { ttlSeconds: 300 }) });
    assert.equal(first.status, 201);
    assert.equal(first.headers.get('location'), '/v1/instances/team-a/web-101');
    conforms('Instance', first.body);
    const again = await call('POST', '/v1/instances', { body: create('team-a', 'web-101', { ttlSeconds: 300 }) });
    assert.equal(again.status, 200);
    assert.equal(again.body.name, first.body.name);

    const ready = await eventually('the instance to be ready', 60_000, async () => {
      const read = await call('GET', '/v1/instances/team-a/web-101');
      return read.body.ready === true ? read : undefined;
    });
    conforms('Instance', ready.body);
    const endpoint = (ready.body.endpoints as { url: string }[])[0];
    assert.equal(await (await fetch(endpoint?.url ?? '')).text().then((page) => page.includes('hello team-a')), true);
    assert.ok(!JSON.stringify(ready.body).includes('GREETING'), 'the env is never shown');

    const byTeam = await call('GET', '/v1/instances?team=team-a');
    conforms('Instance', (byTeam.body.items as unknown[])[0]);
    assert.deepEqual((byTeam.body.items as { challenge: string }[]).map((item) => item.challenge), ['web-101']);
    const byChallenge = await call('GET', '/v1/instances?challenge=nothing-here');
    assert.deepEqual(byChallenge.body.items, []);
  });

  test('400 names the field and the rule', async () => {
    expectError(await call('POST', '/v1/instances', { body: create('Team_A', 'web') }), 400, 'InvalidField', /^team: must be a DNS label/);
    expectError(await call('POST', '/v1/instances', { body: { ...create('team-a', 'web'), ports: [] } }), 400, 'InvalidField', /^ports: must list at least one port/);
    expectError(await call('POST', '/v1/instances', { body: create('team-a', 'web', { ttlSeconds: 1 }) }), 400, 'InvalidField', /^ttlSeconds: must be at least 5 seconds/);
    expectError(await call('POST', '/v1/instances', { body: create('team-a', 'web', { privileged: true }) }), 400, 'InvalidField', /^privileged: is not a field of this request$/);
    expectError(await call('POST', '/v1/instances', { raw: '{"team": ' }), 400, 'InvalidBody', /not valid JSON/);
    expectError(await call('GET', '/v1/instances?team=NO'), 400, 'InvalidField', /^query\.team: must be a DNS label/);
  });

  test('extend sets a new lifetime; unknown instances are 404', async () => {
    const extended = await call('POST', '/v1/instances/team-a/web-101/extend', { body: { ttlSeconds: 900 } });
    assert.equal(extended.status, 200);
    conforms('Instance', extended.body);
    assert.equal(extended.body.ttlSeconds, 900);
    expectError(await call('POST', '/v1/instances/team-a/web-101/extend', { body: { ttlSeconds: 'long' } }), 400, 'InvalidField', /^ttlSeconds:/);
    expectError(await call('POST', '/v1/instances/team-z/none/extend', { body: { ttlSeconds: 900 } }), 404, 'NotFound');
    expectError(await call('GET', '/v1/instances/team-z/none'), 404, 'NotFound');
    expectError(await call('GET', '/v1/nothing'), 404, 'NotFound');
  });

  test('a team over its instance limit gets 429 with Retry-After', async () => {
    assert.equal((await call('POST', '/v1/instances', { body: create('team-b', 'one') })).status, 201);
    assert.equal((await call('POST', '/v1/instances', { body: create('team-b', 'two') })).status, 201);
    const third = await call('POST', '/v1/instances', { body: create('team-b', 'three') });
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
    const deleted = await call('DELETE', '/v1/instances/team-b/one');
    assert.equal(deleted.status, 202);
    assert.deepEqual(deleted.body, { deleting: true });
    await eventually('team-b/one to be gone', 60_000, async () => ((await call('GET', '/v1/instances/team-b/one')).status === 404 ? true : undefined));
    expectError(await call('DELETE', '/v1/instances/team-b/one'), 404, 'NotFound');
    assert.equal((await call('POST', '/v1/instances', { body: create('team-b', 'three') })).status, 201, 'the freed slot can be used');
  });

  scenario.declareLogTest();
});
