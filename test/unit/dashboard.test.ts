import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { authenticateBrowser, parseTokens } from '../../src/api/tokens.ts';
import { renderChallengePage } from '../../src/dashboard/challenge-page.ts';
import { escapeHtml } from '../../src/dashboard/html.ts';
import { renderInstancePage, type InstancePageModel } from '../../src/dashboard/instance-page.ts';
import { isAllowedChange, normalisedPath } from '../../src/dashboard/routes.ts';
import { summariseChallenges } from '../../src/domain/challenge-view.ts';
import type { Challenge } from '../../src/domain/challenge.ts';
import { lastErrorOf, type InstanceView } from '../../src/domain/instance-view.ts';
import { HIDDEN, redactJobData } from '../../src/domain/redact.ts';

const NOW = Date.parse('2026-11-21T12:00:00Z');

function view(extra: Partial<InstanceView> = {}): InstanceView {
  return {
    team: 'team-7',
    challenge: 'web-101',
    namespace: 'ctf',
    name: 'web-101-team-7',
    phase: 'Running',
    reason: 'ContainerReady',
    message: 'Container is ready on node n1.',
    ready: true,
    endpoints: [{ name: 'http', host: '10.0.0.5', port: 31000, protocol: 'TCP', url: 'http://10.0.0.5:31000' }],
    node: 'n1',
    ttlSeconds: 3_600,
    expiresAt: '2026-11-21T12:30:00Z',
    createdAt: '2026-11-21T11:55:00Z',
    deleting: false,
    ...extra,
  };
}

function page(instances: InstanceView[], extra: Partial<InstancePageModel> = {}): string {
  return renderInstancePage({ instances, queues: [], viewer: { name: 'ops', readOnly: false }, filter: {}, basePath: '/dashboard', now: NOW, refreshSeconds: 10, ...extra });
}

describe('redactJobData', () => {
  test('hides env values, args and command, keeps names and everything else', () => {
    const data = { v: 1, action: 'start', target: { uid: 'u' }, spec: { image: 'i', env: [{ name: 'FLAG', value: 'CTF{x}' }, { name: 'EMPTY' }], args: ['--flag', 'CTF{x}'], command: ['sh'] } };
    assert.deepEqual(redactJobData(data), { v: 1, action: 'start', target: { uid: 'u' }, spec: { image: 'i', env: [{ name: 'FLAG', value: HIDDEN }, { name: 'EMPTY' }], args: [HIDDEN, HIDDEN], command: [HIDDEN] } });
    assert.equal(data.spec.env[0]?.value, 'CTF{x}', 'the job itself is untouched');
  });

  test('anything that is not a job comes back as it was', () => {
    for (const other of [null, 'text', 3, [1, 2], { spec: 'x' }, { v: 1 }]) assert.deepEqual(redactJobData(other), other);
  });
});

describe('lastErrorOf', () => {
  test('names the reason and message of a failure, a lost node or a crash restart; nothing while all is well', () => {
    assert.equal(lastErrorOf(view()), undefined);
    assert.equal(lastErrorOf(view({ phase: 'Failed', reason: 'ImageNotPresent', message: 'Image x is not present.' })), 'ImageNotPresent: Image x is not present.');
    assert.equal(lastErrorOf(view({ phase: 'Pending', reason: 'NodeLost', message: '' })), 'NodeLost');
    assert.equal(lastErrorOf(view({ phase: 'Starting', reason: 'ContainerRestarting', message: 'restart 1 of 5' })), 'ContainerRestarting: restart 1 of 5');
    assert.equal(lastErrorOf(view({ phase: 'Stopped', reason: 'ContainerStopped' })), undefined);
  });
});

describe('renderInstancePage', () => {
  test('one row per instance in natural team order, with phase, endpoint link, node, age, expiry and last error', () => {
    const html = page([
      view({ team: 'team-12', name: 'web-101-team-12' }),
      view(),
      view({ challenge: 'pwn-300', name: 'pwn-300-team-7', phase: 'Failed', reason: 'PortsExhausted', message: 'No free ports.', endpoints: [], node: null, expiresAt: null }),
    ]);
    const rows = [...html.matchAll(/<tr data-team="([^"]+)" data-challenge="([^"]+)" data-phase="([^"]+)">/g)].map((match) => match.slice(1).join('/'));
    assert.deepEqual(rows, ['team-7/pwn-300/Failed', 'team-7/web-101/Running', 'team-12/web-101/Running']);
    assert.match(html, /<a href="http:\/\/10.0.0.5:31000">10.0.0.5:31000<\/a>/);
    assert.match(html, /title="2026-11-21T11:55:00Z">5m<\/time>/, 'age');
    assert.match(html, /title="2026-11-21T12:30:00Z">in 30m<\/time>/, 'expiry');
    assert.match(html, /<td class="error">PortsExhausted: No free ports.<\/td>/);
    assert.match(html, /<span class="muted">once running<\/span>/, 'a ttl with no expiry yet');
    assert.match(html, /3 of 3 instances <span class="phase phase-running">Running 2<\/span> <span class="phase phase-failed">Failed 1<\/span>/);
  });

  test('filters by namespace, team and challenge, marks deleting instances Terminating, and says when nothing matches', () => {
    assert.match(page([view(), view({ team: 'team-8' })], { filter: { team: 'team-8' } }), /1 of 2 instances/);
    assert.match(page([view(), view({ namespace: 'other' })], { filter: { namespace: 'other', challenge: 'web-101' } }), /1 of 2 instances/);
    assert.match(page([view()], { filter: { namespace: 'ctf' } }), /<input name="namespace" value="ctf" size="14">/);
    assert.match(page([view({ deleting: true })]), /data-phase="Terminating"/);
    assert.match(page([view()], { filter: { challenge: 'nope' } }), /<p class="muted" id="no-instances">No ChallengeInstances match.<\/p>/);
  });

  test('escapes every value, so a hostile name or message cannot inject markup', () => {
    const html = page([view({ phase: 'Failed', reason: 'ContainerExited', message: '<script>alert(1)</script> "quoted"', endpoints: [{ name: 'x', host: 'h', port: 1, protocol: 'TCP', url: 'javascript:alert(1)' }] })], { viewer: { name: '<b>', readOnly: true } });
    assert.ok(!html.includes('<script>alert'), 'no raw script');
    assert.match(html, /&#60;script&#62;alert\(1\)&#60;\/script&#62; &#34;quoted&#34;/);
    assert.ok(!html.includes('href="javascript:'), 'only http(s) endpoints become links');
    assert.match(html, /signed in as &#60;b&#62; · <strong id="read-only">read-only<\/strong>/);
    assert.equal(escapeHtml(`&<>"'`), '&#38;&#60;&#62;&#34;&#39;');
  });

  test('shows each queue with its counts, or why they could not be read', () => {
    assert.match(page([], { queues: [{ queue: 'start', counts: { active: 1, failed: 2 } }] }), /<tr data-queue="start">.*<td class="num">1<\/td>.*<td class="num">2<\/td>/);
    assert.match(page([], { queues: { error: 'connect ECONNREFUSED' } }), /Queues could not be read: connect ECONNREFUSED/);
  });
});

describe('renderChallengePage', () => {
  const challenge = (name: string, extra: Partial<Challenge['spec']> = {}): Challenge => ({
    metadata: { namespace: 'ctf', name, uid: `uid-${name}`, generation: 2, creationTimestamp: '2026-11-21T10:00:00Z' },
    spec: { image: `registry.example/ctf/${name}:1`, imagePullPolicy: 'IfNotPresent', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }], ...extra },
  });
  const render = (challenges: Challenge[], instances: InstanceView[]): string =>
    renderChallengePage({ challenges: summariseChallenges(challenges, instances), viewer: { name: 'viewer', readOnly: true }, basePath: '/dashboard', now: NOW, refreshSeconds: 10 });

  test('one row per Challenge with image, flag kind and delivery, age and a count per phase, linked to its instances', () => {
    const html = render(
      [challenge('web-101', { flag: { kind: 'PerTeam', format: 'CTF{%s}', delivery: 'File', env: 'FLAG', path: '/flag/flag.txt' } }), challenge('pwn-300')],
      [view(), view({ team: 'team-8' }), view({ phase: 'Failed', reason: 'ContainerExited' }), view({ deleting: true })],
    );
    const row = /<tr data-namespace="ctf" data-challenge="web-101" data-declared="true">([\s\S]*?)<\/tr>/.exec(html)?.[1] ?? '';
    assert.match(row, /<a href="\/dashboard\/\?namespace=ctf&#38;challenge=web-101">web-101<\/a><div class="muted small">ctf · generation 2<\/div>/);
    assert.match(row, /<td>registry\.example\/ctf\/web-101:1<\/td>/);
    assert.match(row, /<td class="nowrap">PerTeam · File<\/td>/);
    assert.match(row, /title="2026-11-21T10:00:00Z">2h<\/time>/);
    assert.match(row, /<td class="num" data-count="total">4<\/td>/);
    assert.match(row, /<td class="num" data-phase="Running"><span class="phase phase-running">2<\/span><\/td>/);
    assert.match(row, /<td class="num" data-phase="Failed"><span class="phase phase-failed">1<\/span><\/td>/);
    assert.match(row, /<td class="num" data-phase="Terminating"><span class="phase phase-terminating">1<\/span><\/td>/);
    assert.match(row, /<td class="num muted" data-phase="Pending">0<\/td>/);
    assert.equal((row.match(/data-phase=/g) ?? []).length, 9, 'a cell for every phase');
    assert.ok(!html.includes('CTF{'), 'the flag format is not shown');
    assert.match(html, /<tr data-namespace="ctf" data-challenge="pwn-300" data-declared="true">[\s\S]*?<span class="muted">none<\/span>[\s\S]*?data-count="total">0</);
    assert.match(html, /<span id="summary">2 challenges · 4 instances, 2 running<\/span>/);
    assert.match(html, /<nav><a href="\/dashboard\/">Instances<\/a> <a href="\/dashboard\/queues\/">Queue dashboard<\/a><\/nav>/);
    assert.ok(!html.includes('id="undeclared"'), 'no note while every name has a Challenge');
  });

  test("a pooled Challenge shows its pool as idle / size, from the workers' report in its status; others show none", () => {
    const pooled: Challenge = { ...challenge('web-101', { pool: { size: 50 } }), status: { pool: { idle: 47, target: 50 } } };
    const html = render([pooled, challenge('pwn-300')], []);
    assert.match(html, /<th class="num" title="warm pool: idle \/ size">pool<\/th>/);
    assert.match(html, /data-challenge="web-101"[\s\S]*?<td class="num" data-pool="47\/50"[^>]*>47 \/ 50<\/td>/);
    assert.match(html, /data-challenge="pwn-300"[\s\S]*?<td class="muted" data-pool="none">none<\/td>/);
  });

  test('a name instances use without a Challenge is shown as such, with a note', () => {
    const html = render([], [view({ challenge: 'ghost', phase: 'Failed', reason: 'ChallengeNotFound' })]);
    assert.match(html, /<tr data-namespace="ctf" data-challenge="ghost" data-declared="false">[\s\S]*?<span class="muted" title="No Challenge ghost in namespace ctf">no Challenge<\/span>/);
    assert.match(html, /<p class="muted small" id="undeclared">/);
    assert.match(html, /0 challenges · 1 instance, 0 running/);
    assert.match(render([], []), /<p class="muted" id="no-challenges">/);
  });

  test('escapes every value, so an organiser\'s image or a hostile name cannot inject markup', () => {
    const html = render([challenge('web-101', { image: 'evil"><script>alert(1)</script>' })], [view({ namespace: 'ctf', challenge: '<b>x</b>' })]);
    assert.ok(!html.includes('<script>alert') && !html.includes('<b>x'), 'no raw markup');
    assert.match(html, /<td>evil&#34;&#62;&#60;script&#62;alert\(1\)&#60;\/script&#62;<\/td>/);
    assert.match(html, /data-challenge="&#60;b&#62;x&#60;\/b&#62;"/);
    assert.match(html, /href="\/dashboard\/\?namespace=ctf&#38;challenge=%3Cb%3Ex%3C%2Fb%3E"/, 'the link is encoded, then escaped');
  });
});

describe('authenticateBrowser', () => {
  const tokens = parseTokens('ops:admin:0123456789abcdef-admin\nboard:read:0123456789abcdef-read\n', 'tokens');
  const basic = (text: string): string => `Basic ${Buffer.from(text).toString('base64')}`;

  test('takes Basic with the token name as user, or a bearer token', () => {
    assert.equal(authenticateBrowser(tokens, basic('ops:0123456789abcdef-admin'))?.name, 'ops');
    assert.equal(authenticateBrowser(tokens, basic('board:0123456789abcdef-read'))?.role, 'read');
    assert.equal(authenticateBrowser(tokens, 'Bearer 0123456789abcdef-read')?.name, 'board');
  });

  test("refuses another token's name, a wrong token, no colon and garbage", () => {
    for (const header of [basic('board:0123456789abcdef-admin'), basic('ops:0123456789abcdef-wrong'), basic('ops0123456789abcdef-admin'), 'Basic !!!', undefined]) {
      assert.equal(authenticateBrowser(tokens, header), undefined, String(header));
    }
  });
});

describe('isAllowedChange', () => {
  const table: [string, string, boolean][] = [
    ['PUT', '/queues/api/queues/start/retry/failed', true],
    ['PUT', '/queues/api/queues/start/u.1.start/retry', true],
    ['PUT', '/queues/api/queues/start/clean/completed', true],
    ['PUT', '/queues/api/queues/node.a/pause', true],
    ['PUT', '/queues/api/queues/resume', true],
    ['POST', '/queues/api/queues/start/add', false],
    ['POST', '/queues/api/queues/start/add/', false],
    ['POST', '/queues/api/queues/start/ADD', false],
    ['POST', '/queues/api/queues/start/%61dd', false],
    ['PATCH', '/queues/api/queues/start/u.1.start/update-data', false],
    ['PATCH', '/queues/api/queues/start/u.1.start/Update-Data', false],
    ['PUT', '/queues/api/queues/start/empty', false],
    ['PUT', '/queues/api/queues/start/obliterate', false],
    ['PUT', '/queues/api/queues/start/concurrency', false],
    ['POST', '/queues/api/queues/start/retry/failed', false],
    ['DELETE', '/', false],
    ['PUT', '/queues/api/queues/start/%E0%A4%A', false],
  ];
  for (const [method, path, allowed] of table) {
    test(`${method} ${path} is ${allowed ? 'allowed' : 'refused'}`, () => {
      assert.equal(isAllowedChange(method, path), allowed);
    });
  }
  test('variants of an allowed change are still allowed (Express routes them to the same handler)', () => {
    assert.equal(isAllowedChange('put', '/queues/api/queues/START/Retry/failed/'), true);
    assert.equal(normalisedPath('/Queues//API/queues/start/ADD/'), '/queues/api/queues/start/add');
  });
});
