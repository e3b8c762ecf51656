import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { ARTIFACTS, isRunning, webSpec, type RawInstance } from '../support/ctfleet.ts';
import { Scenario } from '../support/scenario.ts';
import { eventually, freePort } from '../support/stack.ts';

// The dashboard of a real `ctfleet all` against the stack: auth, the instance
// view, bull-board over payloads that carry no spec, read-only modes, and a real headless
// Chromium (Debian's, driven by playwright-core) that loads both pages and keeps
// screenshots in test-artifacts/.
const ADMIN = { user: 'ops', token: 'ops-token-0123456789abcdef' };
const VIEWER = { user: 'viewer', token: 'viewer-token-0123456789abcdef' };
const FLAG = 'CTF{dashboard-must-never-show-this}';
const CHROMIUM = process.env.CTFLEET_CHROMIUM ?? '/usr/bin/chromium';

const basic = (who: { user: string; token: string }): string => `Basic ${Buffer.from(`${who.user}:${who.token}`).toString('base64')}`;

describe('dashboard', () => {
  const tokens = join(mkdtempSync(join(tmpdir(), 'ctfleet-dashboard-')), 'tokens');
  writeFileSync(tokens, `${ADMIN.user}:admin:${ADMIN.token}\n${VIEWER.user}:read:${VIEWER.token}\n`);
  const scenario = new Scenario('dashboard', 14, { CTFLEET_API_TOKENS_FILE: tokens });
  let base: string;
  let readOnlyBase: string;
  let running: RawInstance[];

  const get = async (path: string, authorization: string | null, root = base): Promise<{ status: number; text: string; headers: Headers }> => {
    const response = await fetch(`${root}${path}`, { headers: authorization === null ? {} : { authorization }, redirect: 'manual' });
    return { status: response.status, text: await response.text(), headers: response.headers };
  };
  const send = async (method: string, path: string, authorization: string, root = base): Promise<{ status: number; body: { error?: { code: string; message: string } } }> => {
    const response = await fetch(`${root}${path}`, { method, headers: { authorization, 'content-type': 'application/json' }, body: '{}' });
    return { status: response.status, body: (await response.json()) as { error?: { code: string; message: string } } };
  };

  before(async () => {
    await scenario.prepare();
    const [port, readOnlyPort] = [await freePort(), await freePort()];
    base = `http://127.0.0.1:${port}`;
    readOnlyBase = `http://127.0.0.1:${readOnlyPort}`;
    scenario.start('all', { CTFLEET_API_PORT: String(port), CTFLEET_API_NAMESPACE: scenario.namespace });
    // A second deployment of the dashboard alone, read-only for everybody.
    scenario.start('api', { CTFLEET_API_PORT: String(readOnlyPort), CTFLEET_DASHBOARD_READ_ONLY: 'true' }, 'read-only-api');
    await scenario.apply(['web-101-team-7', 'web-101-team-12'], (name) => webSpec(name.replace('web-101-', ''), { env: [{ name: 'GREETING', value: 'hi' }, { name: 'FLAG', value: FLAG }], args: [FLAG], ttlSeconds: 3_600 }));
    await scenario.apply(['pwn-300-team-7'], () => webSpec('team-7', { challenge: 'pwn-300', image: 'ctfleet-test/not-built:1' }));
    running = await Promise.all(['web-101-team-7', 'web-101-team-12'].map((name) => scenario.instances.waitFor(scenario.namespace, name, 'to run', isRunning, 90_000)));
    await scenario.instances.waitFor(scenario.namespace, 'pwn-300-team-7', 'to fail', (instance) => instance.status?.phase === 'Failed', 90_000);
    for (const root of [base, readOnlyBase]) {
      await eventually(`the dashboard at ${root}`, 30_000, async () => ((await fetch(`${root}/dashboard/`, { headers: { authorization: basic(VIEWER) } }).catch(() => undefined))?.ok === true ? true : undefined));
    }
  });
  after(() => scenario.cleanup());

  test('every path asks for a token: Basic (token name and token) or Bearer; anything else is 401 with a Basic challenge', async () => {
    for (const path of ['/dashboard/', '/dashboard/queues/', '/dashboard/queues/api/queues']) {
      const anonymous = await get(path, null);
      assert.equal(anonymous.status, 401, path);
      assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic realm="ctfleet dashboard"/);
      assert.doesNotMatch(anonymous.text, /\n\s+at /, 'no stack trace');
    }
    assert.equal((await get('/dashboard/', basic({ user: VIEWER.user, token: 'wrong-token-0123456789' }))).status, 401, 'wrong token');
    assert.equal((await get('/dashboard/', basic({ user: ADMIN.user, token: VIEWER.token }))).status, 401, "another token's name");
    assert.equal((await get('/dashboard/', `Bearer ${VIEWER.token}`)).status, 200);
    assert.equal((await get('/dashboard/', basic(VIEWER))).status, 200);
    const redirect = await get('/dashboard', basic(VIEWER));
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get('location'), '/dashboard/');
  });

  test('the instance view shows each instance by team and challenge with phase, endpoint, node, age, expiry and last error, and never an env value or arg', async () => {
    const page = await get('/dashboard/', basic(VIEWER));
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.ok(!page.text.includes(FLAG), 'the flag is not on the page');
    for (const instance of running) {
      const { team, challenge } = instance.spec as { team: string; challenge: string };
      const row = new RegExp(`<tr data-team="${team}" data-challenge="${challenge}" data-phase="Running">([\\s\\S]*?)</tr>`).exec(page.text)?.[1];
      assert.ok(row !== undefined, `a Running row for ${team}/${challenge}`);
      const endpoint = instance.status?.endpoints?.[0];
      assert.ok(endpoint !== undefined);
      assert.ok(row.includes(`${endpoint.host}:${endpoint.port}`), `the endpoint of ${team}`);
      assert.ok(row.includes(`<td class="nowrap">${scenario.node('a')}</td>`), 'the node');
      assert.match(row, /<time datetime="[^"]+Z"[^>]*>\d+s<\/time>/, 'the age');
      assert.match(row, /in (59m|60m|1h)<\/time>/, 'the expiry, an hour away');
    }
    const failed = /<tr data-team="team-7" data-challenge="pwn-300" data-phase="Failed">([\s\S]*?)<\/tr>/.exec(page.text)?.[1];
    assert.ok(failed !== undefined, 'a Failed row for team-7/pwn-300');
    assert.match(failed, /<td class="error">ImageNotPresent: [^<]+ctfleet-test\/not-built:1/, 'the last error names the reason and the image');
    assert.match(page.text, /<span id="summary">3 of 3 instances <span class="phase phase-running">Running 2<\/span> <span class="phase phase-failed">Failed 1<\/span>/);
    assert.match(page.text, /<tr data-queue="start"><td><a href="\/dashboard\/queues\/queue\/start">start<\/a><\/td>(<td class="num">\d+<\/td>){6}<\/tr>/, 'the queues with their counts');
    assert.match(page.text, /signed in as viewer · <strong id="read-only">read-only<\/strong>/);

    const team7 = await get('/dashboard/?team=team-7', basic(VIEWER));
    assert.equal((team7.text.match(/<tr data-team=/g) ?? []).length, 2, 'filtered by team');
    assert.ok(!team7.text.includes('data-team="team-12"'));
    const pwn = await get('/dashboard/?challenge=pwn-300', basic(VIEWER));
    assert.equal((pwn.text.match(/<tr data-team=/g) ?? []).length, 1, 'filtered by challenge');
    const bad = await get('/dashboard/?team=Team%207', basic(VIEWER));
    assert.equal(bad.status, 400);
    assert.equal(bad.text, 'team: must be a DNS label (lower-case letters, digits and -)\n');
  });

  test('bull-board lists every queue and its jobs, whose payloads carry no spec: no env value, arg or command reaches Redis', async () => {
    const listing = await get('/dashboard/queues/api/queues?activeQueue=start&status=completed&page=1', basic(VIEWER));
    assert.equal(listing.status, 200);
    assert.ok(!listing.text.includes(FLAG), 'the flag is not in the job listing');
    const queues = (JSON.parse(listing.text) as { queues: { name: string; readOnlyMode: boolean; jobs: { id: string; data: { spec?: unknown; specHash?: string; target?: { uid?: string } } }[] }[] }).queues;
    assert.deepEqual(queues.map((queue) => queue.name).sort(), ['node.e2e-dashboard-a', 'start']);
    assert.ok(queues.every((queue) => queue.readOnlyMode), 'a read token gets the read-only board');
    const start = queues.find((queue) => queue.name === 'start');
    const job = start?.jobs.find((candidate) => candidate.id.startsWith(running[0]?.metadata.uid ?? '?'));
    assert.ok(job !== undefined, `the start job of ${running[0]?.metadata.name ?? '?'} is listed`);
    assert.equal(job.data.spec, undefined, 'the payload names its target, not the spec');
    assert.match(job.data.specHash ?? '', /^[0-9a-f]{16}$/);
    assert.equal(job.data.target?.uid, running[0]?.metadata.uid);
    const detail = await get(`/dashboard/queues/api/queues/start/${encodeURIComponent(job.id)}`, basic(ADMIN));
    assert.equal(detail.status, 200);
    assert.ok(!detail.text.includes(FLAG) && !detail.text.includes('"FLAG"'), 'the job detail has neither the flag nor its variable');
  });

  test('read tokens and a read-only deployment may not act; admins may retry but never add or edit a job', async () => {
    const denied = await send('PUT', '/dashboard/queues/api/queues/start/retry/failed', basic(VIEWER));
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.body.error, { code: 'ReadOnly', message: 'Token viewer may only read (role read).' });

    const failedBefore = await get('/dashboard/queues/api/queues?activeQueue=start&status=failed&page=1', basic(ADMIN));
    const failedJobs = (JSON.parse(failedBefore.text) as { queues: { name: string; counts: { failed: number } }[] }).queues.find((queue) => queue.name === 'start')?.counts.failed ?? 0;
    assert.ok(failedJobs >= 1, 'the failed start of pwn-300 is in the queue');
    const retried = await send('PUT', '/dashboard/queues/api/queues/start/retry/failed', basic(ADMIN));
    assert.equal(retried.status, 200, 'an admin may retry');
    // The retried job fails again the same way: the instance stays Failed with its reason.
    await scenario.instances.waitFor(scenario.namespace, 'pwn-300-team-7', 'to fail again', (instance) => instance.status?.phase === 'Failed' && instance.status.reason === 'ImageNotPresent', 30_000);

    const added = await send('POST', '/dashboard/queues/api/queues/start/add', basic(ADMIN));
    assert.equal(added.status, 403);
    assert.equal(added.body.error?.code, 'NotAllowed');
    const edited = await send('PATCH', `/dashboard/queues/api/queues/start/${encodeURIComponent(`${running[0]?.metadata.uid ?? ''}.1.start`)}/update-data`, basic(ADMIN));
    assert.equal(edited.status, 403);
    assert.equal(edited.body.error?.code, 'NotAllowed');
    // Express routes these to bull-board's add and update handlers too (case-insensitive, trailing slash).
    const jobPath = `/dashboard/queues/api/queues/start/${encodeURIComponent(`${running[0]?.metadata.uid ?? ''}.1.start`)}`;
    for (const [method, path] of [['POST', '/dashboard/queues/api/queues/start/add/'], ['POST', '/dashboard/queues/api/queues/start/ADD'], ['PATCH', `${jobPath}/Update-Data`], ['PATCH', `${jobPath}/update-data/`], ['PUT', '/dashboard/queues/api/queues/start/obliterate']] as const) {
      const variant = await send(method, path, basic(ADMIN));
      assert.equal(variant.status, 403, `${method} ${path}`);
      assert.equal(variant.body.error?.code, 'NotAllowed', `${method} ${path}`);
    }

    const readOnly = await send('PUT', '/dashboard/queues/api/queues/start/retry/failed', basic(ADMIN), readOnlyBase);
    assert.equal(readOnly.status, 403);
    assert.deepEqual(readOnly.body.error, { code: 'ReadOnly', message: 'The dashboard is read-only (CTFLEET_DASHBOARD_READ_ONLY=true).' });
    const page = await get('/dashboard/', basic(ADMIN), readOnlyBase);
    assert.match(page.text, /signed in as ops · <strong id="read-only">read-only<\/strong>/);
    const boards = JSON.parse((await get('/dashboard/queues/api/queues', basic(ADMIN), readOnlyBase)).text) as { queues: { readOnlyMode: boolean }[] };
    assert.ok(boards.queues.length > 0 && boards.queues.every((queue) => queue.readOnlyMode), 'the read-only deployment serves the read-only board to admins too');
  });

  describe('in a real browser', () => {
    let browser: Browser;
    before(async () => {
      assert.ok(existsSync(CHROMIUM), `Chromium is missing at ${CHROMIUM}: hack/test.sh installs Debian's chromium package`);
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        // The machine's network is closed: keep Chromium from calling home.
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
    });
    after(() => browser.close());

    test('the instance page and the queue board load, show the running instances and the queues, and are kept as screenshots', async () => {
      mkdirSync(ARTIFACTS, { recursive: true });
      const context = await browser.newContext({ httpCredentials: { username: VIEWER.user, password: VIEWER.token }, viewport: { width: 1400, height: 800 } });
      const page = await context.newPage();
      await page.goto(`${base}/dashboard/`);
      const rows = page.locator('#instances tbody tr');
      assert.equal(await rows.count(), 3);
      const team7 = page.locator('tr[data-team="team-7"][data-challenge="web-101"]');
      assert.equal(await team7.locator('.phase').innerText(), 'Running');
      assert.equal(await team7.locator('a').innerText(), `${running.find((instance) => instance.metadata.name === 'web-101-team-7')?.status?.endpoints?.[0]?.host ?? '?'}:${running.find((instance) => instance.metadata.name === 'web-101-team-7')?.status?.endpoints?.[0]?.port ?? '?'}`);
      assert.equal(await page.locator('#queues tr[data-queue="start"]').count(), 1);
      assert.ok(!(await page.content()).includes(FLAG));
      const instancesShot = join(ARTIFACTS, 'dashboard-instances.png');
      await page.screenshot({ path: instancesShot, fullPage: true });

      await page.locator('nav a', { hasText: 'Queue dashboard' }).click();
      await page.waitForURL(`${base}/dashboard/queues/`);
      // bull-board renders in the browser: its menu lists every queue it found.
      await page.getByRole('link', { name: 'start', exact: true }).first().waitFor({ timeout: 15_000 });
      await page.getByRole('link', { name: 'start', exact: true }).first().click();
      await page.getByText('completed', { exact: false }).first().waitFor({ timeout: 15_000 });
      await page.goto(`${base}/dashboard/queues/queue/start?status=completed`);
      await page.getByText(running[0]?.metadata.uid ?? '?', { exact: false }).first().waitFor({ timeout: 15_000 });
      assert.ok(!(await page.content()).includes(FLAG), 'bull-board never shows the flag');
      const queuesShot = join(ARTIFACTS, 'dashboard-queues.png');
      await page.screenshot({ path: queuesShot, fullPage: true });
      for (const shot of [instancesShot, queuesShot]) assert.ok(statSync(shot).size > 10_000, `${shot} holds a real picture`);
      await context.close();
    });

    test('the challenges page opens from the instance page, counts each challenge\'s instances per phase, and links back to them', async () => {
      const context = await browser.newContext({ httpCredentials: { username: VIEWER.user, password: VIEWER.token }, viewport: { width: 1400, height: 800 } });
      const page = await context.newPage();
      await page.goto(`${base}/dashboard/`);
      await page.locator('nav a', { hasText: 'Challenges' }).click();
      await page.waitForURL(`${base}/dashboard/challenges/`);
      // These instances are direct: their names have no Challenge, and are listed as such.
      assert.equal(await page.locator('#challenges tbody tr[data-declared="false"]').count(), 2);
      const web = page.locator(`#challenges tr[data-namespace="${scenario.namespace}"][data-challenge="web-101"]`);
      assert.equal(await web.locator('td[data-phase="Running"]').innerText(), '2');
      assert.equal(await web.locator('td[data-count="total"]').innerText(), '2');
      assert.ok(!(await page.content()).includes(FLAG));
      const shot = join(ARTIFACTS, 'dashboard-challenges.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 10_000, `${shot} holds a real picture`);
      await web.locator('a', { hasText: 'web-101' }).click();
      await page.waitForURL(`${base}/dashboard/?namespace=${scenario.namespace}&challenge=web-101`);
      assert.equal(await page.locator('#instances tbody tr').count(), 2);
      await context.close();
    });
  });

  scenario.declareLogTest();
});
