import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Challenge } from '../../src/domain/challenge.ts';
import { LABELS } from '../../src/domain/names.ts';
import { hasPoolName, nodeShare, POOL_LABEL, poolContainerName, type ClaimRecord } from '../../src/domain/pool.ts';
import type { ContainerInfo, PoolClaimStore } from '../../src/domain/ports.ts';
import { ClaimBook } from '../../src/worker/claim-book.ts';
import { poolGuardChain, poolGuardRules } from '../../src/worker/isolation-plan.ts';
import { poolSpecOf } from '../../src/worker/pool-keeper.ts';
import { planPool, type PoolAction, type PooledChallenge, type PoolFacts, type PoolMember } from '../../src/worker/pool-plan.ts';

const NOW = 1_000_000_000;
const web: PooledChallenge = { key: 'ctf/web', generation: 2, target: 3, maxIdleMs: undefined };
const pwn: PooledChallenge = { key: 'ctf/pwn', generation: 1, target: 2, maxIdleMs: 60_000 };

let counter = 0;
function member(overrides: Partial<PoolMember> = {}): PoolMember {
  counter += 1;
  return { id: `c${counter}`, key: 'ctf/web', generation: 2, createdAt: NOW - 10_000, running: true, ready: true, abandoned: false, ...overrides };
}

function facts(overrides: Partial<PoolFacts> = {}): PoolFacts {
  return { challenges: [web, pwn], members: [], creating: new Map(), budget: 10, now: NOW, ...overrides };
}

const creates = (actions: PoolAction[]): string[] => actions.flatMap((action) => (action.type === 'create' ? [action.key] : [])).sort();
const removals = (actions: PoolAction[]): [string, string][] => actions.flatMap((action): [string, string][] => (action.type === 'remove' ? [[action.member.id, action.reason]] : []));

/** Carries the actions out: removals go, creates become in flight. */
function apply(input: PoolFacts, actions: PoolAction[]): PoolFacts {
  const gone = new Set(actions.flatMap((action) => (action.type === 'remove' ? [action.member.id] : [])));
  const creating = new Map(input.creating);
  let used = 0;
  for (const action of actions) {
    if (action.type !== 'create') continue;
    creating.set(action.key, (creating.get(action.key) ?? 0) + 1);
    used += 1;
  }
  return { ...input, members: input.members.filter((candidate) => !gone.has(candidate.id)), creating, budget: input.budget - used };
}

describe('planPool', () => {
  test('an empty node fills every pool to its target', () => {
    assert.deepEqual(creates(planPool(facts())), ['ctf/pwn', 'ctf/pwn', 'ctf/web', 'ctf/web', 'ctf/web']);
  });

  test('a full pool, with creates in flight counted, asks for nothing', () => {
    const input = facts({ members: [member(), member()], creating: new Map([['ctf/web', 1], ['ctf/pwn', 2]]) });
    assert.deepEqual(planPool(input), []);
  });

  test('the refill budget bounds creates, shared out to the pools furthest below target', () => {
    const actions = planPool(facts({ budget: 2, members: [member()] }));
    // web is 2 short, pwn 2 short: one each, not two for the first.
    assert.deepEqual(creates(actions), ['ctf/pwn', 'ctf/web']);
    assert.deepEqual(planPool(facts({ budget: 0 })), []);
  });

  const removalCases: [string, Partial<PoolMember>, PooledChallenge[], string][] = [
    ['its Challenge is gone', { key: 'ctf/gone' }, [web], 'ChallengeGone'],
    ['its Challenge keeps no pool here any more', {}, [{ ...web, target: 0 }], 'NotPooled'],
    ['it stopped running', { running: false }, [web], 'Exited'],
    ['it is of an older generation', { generation: 1 }, [web], 'Outdated'],
    ['it is idle past maxIdleSeconds', { key: 'ctf/pwn', generation: 1, createdAt: NOW - 60_000 }, [pwn], 'Aged'],
    ['a claim took it and did not finish', { abandoned: true }, [web], 'AbandonedClaim'],
  ];
  for (const [why, overrides, challenges, reason] of removalCases) {
    test(`removes a member when ${why} (${reason}) and makes a new one where the pool still wants it`, () => {
      const stale = member(overrides);
      const actions = planPool(facts({ challenges, members: [stale] }));
      assert.deepEqual(removals(actions), [[stale.id, reason]]);
      const wanted = challenges.reduce((sum, challenge) => sum + Math.max(0, challenge.target), 0);
      assert.equal(creates(actions).length, wanted);
    });
  }

  test('a surplus (the pool shrank) removes not-ready ones first, then the youngest', () => {
    const old = member({ createdAt: NOW - 50_000 });
    const young = member({ createdAt: NOW - 1_000 });
    const starting = member({ ready: false, createdAt: NOW - 60_000 });
    const middle = member({ createdAt: NOW - 20_000 });
    const actions = planPool(facts({ challenges: [{ ...web, target: 2 }], members: [old, young, starting, middle] }));
    assert.deepEqual(removals(actions), [[starting.id, 'Surplus'], [young.id, 'Surplus']]);
    assert.deepEqual(creates(actions), []);
  });

  test('creates in flight above the target remove idle members, never more than there are', () => {
    const only = member();
    const actions = planPool(facts({ challenges: [{ ...web, target: 1 }], members: [only], creating: new Map([['ctf/web', 3]]) }));
    assert.deepEqual(removals(actions), [[only.id, 'Surplus']]);
  });

  test('a rotation (new generation) replaces every idle member', () => {
    const members = [member({ generation: 1 }), member({ generation: 1 }), member({ generation: 1 })];
    const actions = planPool(facts({ challenges: [web], members }));
    assert.deepEqual(removals(actions).map(([, reason]) => reason), ['Outdated', 'Outdated', 'Outdated']);
    assert.deepEqual(creates(actions), ['ctf/web', 'ctf/web', 'ctf/web']);
    assert.ok(actions.every((action) => action.type !== 'create' || action.generation === 2));
  });

  test('idempotent: planning again after the actions yields only what the budget held back', () => {
    const scenarios: PoolFacts[] = [
      facts(),
      facts({ budget: 2 }),
      facts({ members: [member({ generation: 1 }), member({ running: false }), member(), member(), member(), member()] }),
      facts({ members: [member({ key: 'ctf/pwn', generation: 1, createdAt: NOW - 120_000 }), member({ abandoned: true })], creating: new Map([['ctf/web', 1]]) }),
    ];
    for (const input of scenarios) {
      const first = planPool(input);
      const after = apply(input, first);
      const second = planPool(after);
      assert.deepEqual(removals(second), [], 'no removal twice');
      const heldBack = input.budget - (input.budget - after.budget);
      assert.ok(creates(second).length <= Math.max(0, heldBack), 'creates only within what is left of the budget');
      if (after.budget > 0) assert.deepEqual(creates(second), [], 'nothing left to create once the budget sufficed');
    }
  });
});

describe('pool shares and names', () => {
  test('each node keeps perNode, else its equal share of size rounded up', () => {
    assert.equal(nodeShare(undefined, 3), 0);
    assert.equal(nodeShare({ size: 50 }, 1), 50);
    assert.equal(nodeShare({ size: 50 }, 3), 17);
    assert.equal(nodeShare({ size: 50 }, 0), 50);
    assert.equal(nodeShare({ size: 0 }, 2), 0);
    assert.equal(nodeShare({ size: 50, perNode: 4 }, 3), 4);
  });

  test('pool names never meet instance container names', () => {
    const name = poolContainerName('ctf', 'web', 'a1b2c3d4');
    assert.equal(name, 'ctfpool-ctf_web-a1b2c3d4');
    assert.equal(hasPoolName(name), true);
    // An instance named like a pool container still gets a ctfleet- name.
    assert.equal(hasPoolName('ctfleet-ctfpool_web'), false);
  });

  test('the guard chain is per node and its rules match DNATed connections by original port, sorted', () => {
    assert.notEqual(poolGuardChain('node-a'), poolGuardChain('node-b'));
    assert.ok(poolGuardChain('a-very-long-node-name.example.internal').length <= 28, 'iptables chain names are at most 28 characters');
    assert.deepEqual(poolGuardRules(new Set([31002, 31001])), [
      '-o ctfl-+ -m conntrack --ctstate DNAT --ctorigdstport 31001 -j DROP',
      '-o ctfl-+ -m conntrack --ctstate DNAT --ctorigdstport 31002 -j DROP',
    ]);
    // None instances on the engine's default bridge: its pool containers' ports are closed there too.
    assert.deepEqual(poolGuardRules(new Set([31001]), 'docker0'), [
      '-o ctfl-+ -m conntrack --ctstate DNAT --ctorigdstport 31001 -j DROP',
      '-o docker0 -m conntrack --ctstate DNAT --ctorigdstport 31001 -j DROP',
    ]);
  });
});

describe('poolSpecOf', () => {
  const challenge = (flag?: Challenge['spec']['flag']): Challenge => ({
    metadata: { namespace: 'ctf', name: 'web', uid: 'u', generation: 3 },
    spec: { image: 'ctfleet-test/web:1', imagePullPolicy: 'IfNotPresent', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }], pool: { size: 2 }, ...(flag === undefined ? {} : { flag }) },
  });

  test('a pool container has the Challenge\'s container, no flag, and a volume where the flag file goes', () => {
    const shaped = poolSpecOf(challenge({ kind: 'PerTeam', format: 'flag{%s}', delivery: 'File', env: 'FLAG', path: '/flag/flag.txt' }), 3600);
    assert.ok('spec' in shaped);
    assert.equal(shaped.spec.image, 'ctfleet-test/web:1');
    assert.equal(shaped.spec.flag, undefined);
    assert.equal(shaped.filesDir, '/flag');
  });

  test('a flag file at the root cannot be pooled: its directory becomes a mount of its own', () => {
    const shaped = poolSpecOf(challenge({ kind: 'PerTeam', format: 'flag{%s}', delivery: 'File', env: 'FLAG', path: '/flag.txt' }), 3600);
    assert.ok('problem' in shaped);
    assert.match(shaped.problem, /spec\.flag\.path/);
  });

  test('a flag delivered in the environment cannot be pooled, and says why', () => {
    const shaped = poolSpecOf(challenge({ kind: 'PerTeam', format: 'flag{%s}', delivery: 'Env', env: 'FLAG', path: '/flag/flag.txt' }), 3600);
    assert.ok('problem' in shaped);
    assert.match(shaped.problem, /spec\.flag\.delivery must be File/);
  });
});

describe('ClaimBook', () => {
  /** A store with HSETNX's rule: the first claim of a container wins. */
  class MemoryStore implements PoolClaimStore {
    readonly records = new Map<string, ClaimRecord>();
    claim(_node: string, id: string, record: ClaimRecord): Promise<boolean> {
      if (this.records.has(id)) return Promise.resolve(false);
      this.records.set(id, record);
      return Promise.resolve(true);
    }
    load(): Promise<Map<string, ClaimRecord>> {
      return Promise.resolve(new Map(this.records));
    }
    forget(_node: string, ids: readonly string[]): Promise<void> {
      for (const id of ids) this.records.delete(id);
      return Promise.resolve();
    }
  }
  const record = (uid: string): ClaimRecord => ({ uid, namespace: 'ctf', name: `i-${uid}`, team: 'team-1', generation: 1, specHash: '0123456789abcdef', claimedAt: NOW });
  const pooled = (id: string, name: string): ContainerInfo => ({ id, name, running: true, exitCode: undefined, labels: { [POOL_LABEL]: 'web', [LABELS.namespace]: 'ctf', [LABELS.node]: 'n1' }, hostPorts: [31001], createdAt: NOW });

  test('a container is claimed once, across books sharing a store (two workers)', async () => {
    const store = new MemoryStore();
    const first = new ClaimBook(store, 'n1');
    const second = new ClaimBook(store, 'n1');
    const results = await Promise.all([first.claim('c1', record('a')), second.claim('c1', record('b'))]);
    assert.deepEqual(results.sort(), [false, true]);
    const winner = store.records.get('c1')?.uid;
    const [won, lost] = winner === 'a' ? [first, second] : [second, first];
    assert.equal(won.get('c1')?.uid, winner);
    assert.equal(lost.get('c1'), undefined, 'the loser holds no claim');
  });

  test('a claimed container reads with its claimant\'s labels; an idle one as a pool container', async () => {
    const book = new ClaimBook(new MemoryStore(), 'n1');
    await book.claim('c1', record('a'));
    const claimed = book.apply(pooled('c1', 'ctfleet-ctf_i-a'));
    assert.equal(claimed.labels[LABELS.uid], 'a');
    assert.equal(claimed.labels[LABELS.name], 'i-a');
    assert.equal(claimed.labels[LABELS.specHash], '0123456789abcdef');
    assert.equal(book.isUnclaimedPoolContainer(claimed), false);
    const idle = pooled('c2', 'ctfpool-ctf_web-aaaa');
    assert.equal(book.apply(idle), idle);
    assert.equal(book.isUnclaimedPoolContainer(idle), true);
    assert.deepEqual(book.idsOf('a'), ['c1']);
  });

  test('a claim still under its pool name is abandoned; forgetting and pruning drop claims of gone containers', async () => {
    const store = new MemoryStore();
    const book = new ClaimBook(store, 'n1');
    await book.claim('c1', record('a'));
    await book.claim('c2', record('b'));
    assert.equal(book.isAbandonedClaim(pooled('c1', 'ctfpool-ctf_web-aaaa')), true);
    assert.equal(book.isAbandonedClaim(pooled('c1', 'ctfleet-ctf_i-a')), false);
    await book.prune(new Set(['c2']));
    assert.equal(book.get('c1'), undefined);
    assert.equal(store.records.has('c1'), false);
    await book.forget(['c2']);
    assert.equal(store.records.size, 0);
  });

  test('load reads the claims back after a restart', async () => {
    const store = new MemoryStore();
    await new ClaimBook(store, 'n1').claim('c1', record('a'));
    const restarted = new ClaimBook(store, 'n1');
    await restarted.load();
    assert.equal(restarted.get('c1')?.uid, 'a');
    assert.equal(await restarted.claim('c1', record('b')), false);
  });
});
