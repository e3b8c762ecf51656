import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { kubectl } from '../support/ctfleet.ts';
import { Scenario } from '../support/scenario.ts';
import { eventually, freePort } from '../support/stack.ts';

// The platform API's per-team instance cap with two API processes against the
// real API server and Redis, as two replicas behind one Service would run: the
// count a team holds is checked and taken atomically in Redis, so concurrent
// creates split across both never make more instances than the cap; the API
// server's listing stays the truth, so a slot freed there (kubectl delete, expiry)
// is free again, and a create the API server refuses holds no slot. Instances are
// made from Challenges, one per name the test uses; nothing runs them (no worker).
const ADMIN = 'cap-admin-token-0123456789abcdef';
const CAP = 3;
const TEAM = 'team-burst';

interface Reply {
  status: number;
  retryAfter: string | null;
  body: { error?: { code: string; message: string } };
}

describe('the per-team instance cap across two API processes', () => {
  const tokens = join(mkdtempSync(join(tmpdir(), 'ctfleet-api-cap-')), 'tokens');
  writeFileSync(tokens, `platform:admin:${ADMIN}\n`);
  const scenario = new Scenario('apicap', 18, { CTFLEET_API_TOKENS_FILE: tokens, CTFLEET_API_MAX_INSTANCES_PER_TEAM: String(CAP) });
  let bases: [string, string];
  let custom: CustomObjectsApi;

  const create = async (base: string, challenge: string, extra: Record<string, unknown> = {}): Promise<Reply> => {
    const response = await fetch(`${base}/v1/instances`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ team: TEAM, challenge, ...extra }),
    });
    return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as Reply['body'] };
  };
  /** The team's ChallengeInstances as the API server has them. */
  const teamInstances = async (): Promise<string[]> => {
    const list = (await custom.listNamespacedCustomObject({ group: 'ctfleet.io', version: 'v1alpha1', namespace: scenario.namespace, plural: 'challengeinstances', labelSelector: `ctfleet.io/team=${TEAM}` })) as { items: { metadata: { name: string } }[] };
    return list.items.map((item) => item.metadata.name).sort();
  };
  /** Waits until the API server's admission applies (or no longer applies) the test's quota, asked with a dry run that creates nothing. */
  const quotaSeen = async (refusing: boolean): Promise<void> => {
    const probe = JSON.stringify({ apiVersion: 'ctfleet.io/v1alpha1', kind: 'ChallengeInstance', metadata: { name: 'quota-probe', namespace: scenario.namespace }, spec: { team: 'probe', challengeRef: { name: 'probe' } } });
    await eventually(`the quota to be ${refusing ? 'applied' : 'gone'}`, 10_000, async () => {
      const dryRun = await kubectl(['create', '--dry-run=server', '-f', '-'], probe);
      return (dryRun.code !== 0 && /exceeded quota/.test(dryRun.stderr)) === refusing ? true : undefined;
    });
  };
  const expectTeamLimit = (reply: Reply): void => {
    assert.equal(reply.status, 429, JSON.stringify(reply.body));
    assert.equal(reply.body.error?.code, 'TeamLimit');
    assert.match(reply.body.error.message, new RegExp(`^Team ${TEAM} already has \\d+ instances \\(limit ${CAP}\\); delete one first\\.$`));
    assert.match(reply.retryAfter ?? '', /^\d+$/);
  };

  before(async () => {
    await scenario.prepare();
    custom = scenario.kubeConfig.makeApiClient(CustomObjectsApi);
    const names = [
      ...Array.from({ length: 20 }, (_, i) => `burst-${String(i)}`),
      ...Array.from({ length: CAP }, (_, i) => [`invalid-${String(i)}`, `valid-${String(i)}`]).flat(),
      'one-more', 'after-delete', 'still-full', 'after-expiry', 'full-again', 'over',
    ];
    const challenges = names.map((name) =>
      JSON.stringify({ apiVersion: 'ctfleet.io/v1alpha1', kind: 'Challenge', metadata: { name, namespace: scenario.namespace }, spec: { image: 'ctfleet-test/web:1', ports: [{ name: 'http', containerPort: 8080 }] } }),
    );
    const applied = await kubectl(['apply', '-f', '-'], challenges.join('\n'));
    assert.equal(applied.code, 0, applied.stderr);
    const ports = [await freePort(), await freePort()];
    bases = [`http://127.0.0.1:${ports[0] ?? 0}`, `http://127.0.0.1:${ports[1] ?? 0}`];
    ports.forEach((port, i) => scenario.start('api', { CTFLEET_API_PORT: String(port), CTFLEET_API_NAMESPACE: scenario.namespace }, `api-${String(i)}`));
    for (const base of bases) {
      await eventually(`the API at ${base}`, 30_000, async () => ((await fetch(`${base}/v1/openapi.json`).catch(() => undefined))?.ok === true ? true : undefined));
    }
  });
  after(() => scenario.cleanup());

  test('20 concurrent creates for one team, split across both processes, never make more instances than the cap; the rest get TeamLimit', async () => {
    // Watch the API server while the burst runs: the cap holds at every moment, not only at the end.
    let most = 0;
    const burst = { running: true };
    const watcher = (async () => {
      while (burst.running) {
        most = Math.max(most, (await teamInstances()).length);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => create(bases[i % 2] ?? '', `burst-${String(i)}`)));
    burst.running = false;
    await watcher;

    const created = replies.filter((reply) => reply.status === 201);
    const refused = replies.filter((reply) => reply.status !== 201);
    assert.equal(created.length, CAP, `statuses: ${replies.map((reply) => reply.status).join(' ')}`);
    for (const reply of refused) expectTeamLimit(reply);
    const instances = await teamInstances();
    assert.equal(instances.length, CAP, `in the API server: ${instances.join(', ')}`);
    assert.ok(most <= CAP, `${most} instances of ${TEAM} existed at one moment`);
    // Both processes took part, and either refuses once the team is full.
    for (const base of bases) expectTeamLimit(await create(base, 'one-more'));
  });

  test('a slot freed in the API server (kubectl delete, expiry) is free again at once through either process', async () => {
    const [first, second] = await teamInstances();
    const deleted = await kubectl(['delete', 'challengeinstance', first ?? '', '-n', scenario.namespace, '--wait=true', '--timeout=30s']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal((await create(bases[1], 'after-delete')).status, 201, 'the deleted instance\'s slot is free');
    expectTeamLimit(await create(bases[0], 'still-full'));

    const expired = await kubectl(['patch', 'challengeinstance', second ?? '', '-n', scenario.namespace, '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Expired"}}']);
    assert.equal(expired.code, 0, expired.stderr);
    assert.equal((await create(bases[0], 'after-expiry')).status, 201, 'an Expired instance holds no slot');
    expectTeamLimit(await create(bases[1], 'full-again'));
    assert.equal((await teamInstances()).length, CAP + 1, 'three live instances and the expired one');
  });

  test('a create the API server refuses leaves no slot taken', async () => {
    const cleared = await kubectl(['delete', 'challengeinstances', '-l', `ctfleet.io/team=${TEAM}`, '-n', scenario.namespace, '--wait=true', '--timeout=30s']);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.deepEqual(await teamInstances(), []);
    // A quota of no ChallengeInstances: the API server's own admission refuses every create.
    // No quota controller runs in the stack, so the test writes the quota's status itself.
    const quota = 'no-instances';
    const resource = 'count/challengeinstances.ctfleet.io';
    assert.equal((await kubectl(['create', 'quota', quota, '-n', scenario.namespace, `--hard=${resource}=0`])).code, 0);
    const status = await kubectl(['patch', 'resourcequota', quota, '-n', scenario.namespace, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { hard: { [resource]: '0' }, used: { [resource]: '0' } } })]);
    assert.equal(status.code, 0, status.stderr);
    await quotaSeen(true);
    for (let i = 0; i < CAP; i += 1) {
      const refused = await create(bases[i % 2] ?? '', `invalid-${String(i)}`);
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.equal(refused.body.error?.code, 'Forbidden');
      assert.match(refused.body.error.message, /exceeded quota/);
    }
    assert.deepEqual(await teamInstances(), [], 'the API server made none');
    const removed = await kubectl(['delete', 'resourcequota', quota, '-n', scenario.namespace, '--wait=true']);
    assert.equal(removed.code, 0, removed.stderr);
    await quotaSeen(false);
    // Had the refused creates kept their reservations, the team would be full already.
    for (let i = 0; i < CAP; i += 1) assert.equal((await create(bases[i % 2] ?? '', `valid-${String(i)}`)).status, 201, `valid-${String(i)}`);
    expectTeamLimit(await create(bases[0], 'over'));
  });

  scenario.declareLogTest();
});
