import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isAdmittedBy, resolveInstanceSpec, type Challenge, type ChallengeSpec, type Resolution, type StoredInstanceSpec } from '../../src/domain/challenge.ts';
import type { InstanceSpec } from '../../src/domain/challenge-instance.ts';
import { isPermanentReason } from '../../src/domain/reasons.ts';
import { specHash } from '../../src/domain/spec-hash.ts';
import { testInstance } from '../support/fixtures.ts';

const NS = 'ctf';
const POLICY = { maxLifetimeSeconds: 7 * 24 * 3600 };

function challenge(spec: Partial<ChallengeSpec> = {}, metadata: Partial<Challenge['metadata']> = {}): Challenge {
  return {
    metadata: { namespace: NS, name: 'web-101', uid: '9b7e0c1d-0000-4000-8000-000000000002', generation: 3, ...metadata },
    spec: {
      image: 'ctfleet-test/web:1',
      imagePullPolicy: 'Never',
      ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
      env: [{ name: 'GREETING', value: 'hello' }],
      resources: { cpu: '250m', memory: '64Mi', pids: 64 },
      lifetime: { defaultSeconds: 1800, maxSeconds: 7200 },
      ...spec,
    },
  };
}

/** An instance spec in the challengeRef form, as the API server stores it. */
function ref(extra: Partial<StoredInstanceSpec> = {}): StoredInstanceSpec {
  return { team: 'team-7', challengeRef: { name: 'web-101' }, desiredState: 'Running', priority: 0, ...extra };
}

function resolve(spec: StoredInstanceSpec, found: Challenge | undefined, policy = POLICY): Resolution {
  return resolveInstanceSpec({ metadata: { namespace: NS }, spec }, found, policy);
}

/** A direct spec as the API server stores one written without imagePullPolicy (the instance CRD has no default for it). */
function withoutPullPolicy(spec: InstanceSpec): StoredInstanceSpec {
  const copy: StoredInstanceSpec = { ...spec };
  delete copy.imagePullPolicy;
  return copy;
}

function resolved(result: Resolution): InstanceSpec {
  if (!result.ok) assert.fail(`expected a spec, got ${result.reason}: ${result.message}`);
  return result.spec;
}

/** The direct spec an instance of `challenge()` amounts to, written out by hand. */
const DIRECT_EQUIVALENT: InstanceSpec = {
  team: 'team-7',
  challenge: 'web-101',
  image: 'ctfleet-test/web:1',
  imagePullPolicy: 'Never',
  ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
  env: [{ name: 'GREETING', value: 'hello' }],
  resources: { cpu: '250m', memory: '64Mi', pids: 64 },
  ttlSeconds: 1800,
  desiredState: 'Running',
  priority: 0,
};

describe('resolveInstanceSpec', () => {
  test('an instance of a Challenge runs the Challenge\'s container with its own team, state and priority', () => {
    const result = resolve(ref({ desiredState: 'Stopped', priority: 10 }), challenge());
    assert.deepEqual(result, { ok: true, spec: { ...DIRECT_EQUIVALENT, desiredState: 'Stopped', priority: 10 }, challengeGeneration: 3 });
  });

  test('an instance of a Challenge hashes like the direct instance with the same container, so the worker shapes it alike', () => {
    assert.equal(specHash(resolved(resolve(ref(), challenge()))), specHash(DIRECT_EQUIVALENT));
  });

  test('the Challenge\'s command, args, security, network, readiness and flag reach the effective spec', () => {
    const flag = { kind: 'PerTeam', format: 'CTF{%s}', delivery: 'File', env: 'FLAG', path: '/flag/flag.txt' } as const;
    const spec = resolved(
      resolve(
        ref(),
        challenge({
          command: ['/bin/server'],
          args: ['--port', '8080'],
          security: { readOnlyRootFilesystem: true, tmpfs: [{ path: '/tmp', size: '16Mi' }] },
          network: { egress: 'Internet' },
          readiness: { timeoutSeconds: 30 },
          flag,
        }),
      ),
    );
    assert.deepEqual(spec.command, ['/bin/server']);
    assert.deepEqual(spec.args, ['--port', '8080']);
    assert.deepEqual(spec.security, { readOnlyRootFilesystem: true, tmpfs: [{ path: '/tmp', size: '16Mi' }] });
    assert.deepEqual(spec.network, { egress: 'Internet' });
    assert.deepEqual(spec.readiness, { timeoutSeconds: 30 });
    assert.deepEqual(spec.flag, flag);
    assert.equal(spec.challengeRef, undefined, 'a resolved spec is direct');
  });

  describe('lifetimes', () => {
    const cases: { name: string; ttlSeconds?: number; lifetime?: ChallengeSpec['lifetime'] | 'none'; maxLifetimeSeconds?: number; expected: number | undefined | 'InvalidSpec' }[] = [
      { name: 'an instance without ttlSeconds gets the Challenge\'s default', expected: 1800 },
      { name: 'an instance\'s own ttlSeconds within the Challenge\'s maximum is kept', ttlSeconds: 3600, expected: 3600 },
      { name: 'a ttlSeconds equal to the Challenge\'s maximum is kept', ttlSeconds: 7200, expected: 7200 },
      { name: 'a ttlSeconds above the Challenge\'s maximum is refused, not shortened', ttlSeconds: 7201, expected: 'InvalidSpec' },
      { name: 'without a default, an instance without ttlSeconds gets the Challenge\'s maximum', lifetime: { maxSeconds: 600 }, expected: 600 },
      { name: 'without a maximum, any ttlSeconds is the Challenge\'s to accept', ttlSeconds: 86_400, lifetime: { defaultSeconds: 60 }, expected: 86_400 },
      { name: 'a Challenge without a lifetime leaves the deployment\'s maximum in charge', lifetime: 'none', expected: undefined },
      { name: 'the deployment\'s maximum caps the Challenge\'s default, as it caps every lifetime', maxLifetimeSeconds: 900, expected: 900 },
      { name: 'the deployment\'s maximum caps an instance\'s ttlSeconds too', ttlSeconds: 3600, maxLifetimeSeconds: 900, expected: 900 },
    ];
    for (const { name, ttlSeconds, lifetime, maxLifetimeSeconds, expected } of cases) {
      test(name, () => {
        const found = challenge();
        if (lifetime === 'none') delete found.spec.lifetime;
        else if (lifetime !== undefined) found.spec.lifetime = lifetime;
        const result = resolve(ref(ttlSeconds === undefined ? {} : { ttlSeconds }), found, { maxLifetimeSeconds: maxLifetimeSeconds ?? POLICY.maxLifetimeSeconds });
        if (expected === 'InvalidSpec') {
          assert.ok(!result.ok, 'refused');
          assert.equal(result.reason, 'InvalidSpec');
          assert.equal(result.message, "spec.ttlSeconds 7201 is above Challenge ctf/web-101's lifetime.maxSeconds 7200.");
        } else {
          assert.equal(resolved(result).ttlSeconds, expected);
        }
      });
    }
  });

  describe('refusals', () => {
    const cases: { name: string; spec: StoredInstanceSpec; challenge: Challenge | undefined; reason: string; message: RegExp }[] = [
      { name: 'a challengeRef to no Challenge is ChallengeNotFound, naming it', spec: ref(), challenge: undefined, reason: 'ChallengeNotFound', message: /^Challenge ctf\/web-101 does not exist\.$/ },
      { name: 'a Challenge of another namespace is not found', spec: ref(), challenge: challenge({}, { namespace: 'elsewhere' }), reason: 'ChallengeNotFound', message: /ctf\/web-101/ },
      { name: 'a Challenge of another name is not found', spec: ref(), challenge: challenge({}, { name: 'web-102' }), reason: 'ChallengeNotFound', message: /ctf\/web-101/ },
      {
        name: 'a challengeRef instance that sets the Challenge\'s fields anyway is InvalidSpec, naming them',
        spec: ref({ image: 'evil/miner:1', env: [{ name: 'X', value: 'y' }] }),
        challenge: challenge(),
        reason: 'InvalidSpec',
        message: /^The instance sets spec\.image, spec\.env and spec\.challengeRef; with spec\.challengeRef these come from the Challenge\.$/,
      },
      {
        name: 'a direct instance without an image is InvalidSpec, naming the field',
        spec: { team: 'team-7', challenge: 'web-101', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }], desiredState: 'Running', priority: 0 },
        challenge: undefined,
        reason: 'InvalidSpec',
        message: /spec\.image/,
      },
    ];
    for (const { name, spec, challenge: found, reason, message } of cases) {
      test(name, () => {
        const result = resolve(spec, found);
        assert.ok(!result.ok, 'refused');
        assert.equal(result.reason, reason);
        assert.match(result.message, message);
        assert.ok(isPermanentReason(result.reason), 'a permanent reason: retrying the same spec will not help');
      });
    }
  });

  describe('a Challenge being deleted', () => {
    const deleting = challenge({}, { deletionTimestamp: '2026-11-21T12:00:00Z' });
    const createdAt = (creationTimestamp: string): Resolution => resolveInstanceSpec({ metadata: { namespace: NS, creationTimestamp }, spec: ref() }, deleting, POLICY);

    test('an instance created before deletion began still resolves: it was admitted and runs to its end', () => {
      assert.equal(resolved(createdAt('2026-11-21T11:00:00Z')).image, 'ctfleet-test/web:1');
    });

    test('an instance created after deletion began fails ChallengeDeleting, a permanent reason, naming the Challenge', () => {
      const result = createdAt('2026-11-21T12:00:01Z');
      assert.ok(!result.ok);
      assert.equal(result.reason, 'ChallengeDeleting');
      assert.equal(result.message, 'Challenge ctf/web-101 is being deleted (since 2026-11-21T12:00:00Z); it starts no new instances.');
      assert.ok(isPermanentReason(result.reason));
    });

    test('admission compares to the second, as the API server records both times; in the same second the instance is admitted', () => {
      assert.equal(isAdmittedBy({ metadata: { creationTimestamp: '2026-11-21T12:00:00.000Z' } }, deleting), true);
      assert.equal(isAdmittedBy({ metadata: { creationTimestamp: '2026-11-21T12:00:00Z' } }, deleting), true);
      assert.equal(isAdmittedBy({ metadata: { creationTimestamp: '2026-11-21T12:00:01Z' } }, deleting), false);
      assert.equal(isAdmittedBy({ metadata: { creationTimestamp: '2026-11-21T12:00:01Z' } }, challenge()), true, 'a Challenge not being deleted admits every instance');
      assert.equal(isAdmittedBy({ metadata: {} }, deleting), true, 'without a creation time: admitted, so it holds the Challenge');
    });
  });

  describe('direct instances', () => {
    test('a direct instance resolves to its own spec, unchanged, with no Challenge generation', () => {
      const spec = testInstance().spec;
      const result = resolve(spec, challenge());
      assert.ok(result.ok);
      assert.equal(result.spec, spec, 'the same object');
      assert.equal(result.challengeGeneration, undefined);
    });

    test('a direct instance without imagePullPolicy runs with IfNotPresent', () => {
      assert.equal(resolved(resolve(withoutPullPolicy(testInstance().spec), undefined)).imagePullPolicy, 'IfNotPresent');
    });
  });

  test('resolving is idempotent: a resolved spec resolves to itself, whatever the Challenge', () => {
    const flag = { kind: 'Static', format: 'flag{%s}', static: { secretKeyRef: { name: 'web-101-flag', key: 'flag' } }, delivery: 'Env', env: 'FLAG', path: '/flag/flag.txt' } as const;
    const inputs: StoredInstanceSpec[] = [
      testInstance().spec,
      testInstance({ ttlSeconds: 60, desiredState: 'Stopped' }).spec,
      withoutPullPolicy(testInstance().spec),
      ref(),
      ref({ ttlSeconds: 100, priority: 1000 }),
      ref({ desiredState: 'Stopped' }),
    ];
    const challenges = [challenge(), challenge({ flag, readiness: { timeoutSeconds: 5 }, command: ['sh'] }), challenge({ lifetime: {} })];
    for (const input of inputs) {
      for (const found of challenges) {
        const first = resolved(resolve(input, found));
        for (const again of [found, undefined, challenge({ image: 'ctfleet-test/other:1' })]) {
          const second = resolve(first, again);
          assert.deepEqual(second, { ok: true, spec: first, challengeGeneration: undefined }, `${JSON.stringify(input)} resolved twice`);
        }
      }
    }
  });
});
