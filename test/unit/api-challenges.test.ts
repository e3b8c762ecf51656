import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { platformChallengeViews } from '../../src/api/platform-challenges.ts';
import { checkFlag, type FlagReader } from '../../src/api/flag-check.ts';
import { HttpError, MAX_FLAG_LENGTH, ORGANISER_FIELDS, parse, parseCreate, verifySchema } from '../../src/api/routes.ts';
import type { ChallengeInstance, FlagSpec } from '../../src/domain/challenge-instance.ts';
import type { Challenge, ChallengeSpec } from '../../src/domain/challenge.ts';
import { permanent } from '../../src/domain/errors.ts';
import { perTeamFlagPart, renderFlag } from '../../src/domain/flags.ts';
import type { FlagOwner, SecretKeyRef } from '../../src/domain/ports.ts';

// The platform API's challenge surface, its pure parts: what a create and a flag
// check accept, how a flag is checked per kind (against a flag store in memory),
// and what a listing of Challenges shows.

const NS = 'ctf';
const KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');

function challenge(name: string, spec: Partial<ChallengeSpec> = {}, metadata: Partial<Challenge['metadata']> = {}): Challenge {
  return {
    metadata: { namespace: NS, name, uid: `uid-${name}`, generation: 1, creationTimestamp: '2026-01-01T00:00:00Z', ...metadata },
    spec: {
      image: 'registry.example/ctf/web:1',
      imagePullPolicy: 'IfNotPresent',
      ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
      env: [{ name: 'SECRET_SAUCE', value: 'organisers-only' }],
      ...spec,
    },
  };
}

const flagOf = (kind: FlagSpec['kind'], extra: Partial<FlagSpec> = {}): FlagSpec => ({ kind, format: 'CTF{%s}', delivery: 'Env', env: 'FLAG', path: '/flag/flag.txt', ...extra });

function instance(name: string, team: string, spec: Record<string, unknown>, extra: { phase?: 'Running' | 'Failed'; deleting?: boolean; uid?: string } = {}): ChallengeInstance {
  return {
    metadata: { namespace: NS, name, uid: extra.uid ?? `uid-${name}`, generation: 1, ...(extra.deleting === true ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
    spec: { team, desiredState: 'Running', priority: 0, ...spec },
    ...(extra.phase === undefined ? {} : { status: { phase: extra.phase } }),
  } as ChallengeInstance;
}

/** The flag store's reading half in memory: parts by instance uid, static flags by Secret/key. */
class MemoryFlags implements FlagReader {
  readonly parts = new Map<string, string>();
  readonly statics = new Map<string, string>();
  readonly reads: string[] = [];
  failure: Error | undefined;

  deploymentKey(): Promise<Buffer> {
    this.reads.push('key');
    return this.failure === undefined ? Promise.resolve(Buffer.from(KEY)) : Promise.reject(this.failure);
  }

  existingInstanceFlagPart(owner: FlagOwner): Promise<string | undefined> {
    this.reads.push(`part ${owner.namespace}/${owner.name} ${owner.uid}`);
    return Promise.resolve(this.parts.get(owner.uid));
  }

  staticFlag(namespace: string, ref: SecretKeyRef): Promise<string> {
    this.reads.push(`static ${namespace}/${ref.name}:${ref.key}`);
    const value = this.statics.get(`${namespace}/${ref.name}:${ref.key}`);
    return value === undefined ? Promise.reject(permanent('FlagSecretInvalid', `The static flag Secret ${namespace}/${ref.name} does not exist`)) : Promise.resolve(value);
  }
}

/** Runs `fn` and returns the HttpError it throws. */
function httpErrorOf(fn: () => unknown): HttpError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof HttpError, `an HttpError, got ${String(error)}`);
    return error;
  }
  assert.fail('no error was thrown');
}

describe('POST /v1/instances bodies', () => {
  test('a team and a challenge, with an optional ttlSeconds and priority, are all a create takes', () => {
    assert.deepEqual(parseCreate({ team: 'team-7', challenge: 'web-101' }), { team: 'team-7', challenge: 'web-101' });
    assert.deepEqual(parseCreate({ team: 'team-7', challenge: 'web-101', ttlSeconds: 600, priority: 10 }), { team: 'team-7', challenge: 'web-101', ttlSeconds: 600, priority: 10 });
  });

  test('every field of the direct form is refused naming the field and why: organisers choose what runs', () => {
    const direct: Record<string, unknown> = {
      image: 'evil/miner:latest',
      imagePullPolicy: 'Always',
      command: ['sh'],
      args: ['-c', 'id'],
      env: [{ name: 'A', value: 'b' }],
      ports: [{ name: 'http', containerPort: 8080 }],
      resources: { cpu: '64' },
      security: { privileged: true },
      network: { egress: 'Internet' },
      flag: { kind: 'Static' },
    };
    assert.deepEqual(Object.keys(direct).sort(), [...ORGANISER_FIELDS].sort(), 'the table covers every organiser field');
    for (const [field, value] of Object.entries(direct)) {
      const error = httpErrorOf(() => parseCreate({ team: 'team-7', challenge: 'web-101', [field]: value }));
      assert.equal(error.status, 400);
      assert.equal(error.code, 'InvalidField');
      assert.equal(error.field, field);
      assert.match(error.message, new RegExp(`^${field}: is not a field of this request: the platform names a challenge`));
    }
  });

  const refusals: [string, unknown, string, RegExp][] = [
    ['a team that is not a DNS label', { team: 'Team_7', challenge: 'web-101' }, 'team', /^team: must be a DNS label/],
    ['a missing challenge', { team: 'team-7' }, 'challenge', /^challenge: /],
    ['a ttl below 5 s', { team: 'team-7', challenge: 'web-101', ttlSeconds: 1 }, 'ttlSeconds', /^ttlSeconds: must be at least 5 seconds$/],
    ['a priority above 1000', { team: 'team-7', challenge: 'web-101', priority: 1001 }, 'priority', /^priority: must be at most 1000$/],
    ['any other field', { team: 'team-7', challenge: 'web-101', desiredState: 'Stopped' }, 'desiredState', /^desiredState: is not a field of this request$/],
  ];
  for (const [name, body, field, message] of refusals) {
    test(`${name} is refused naming the field and the rule`, () => {
      const error = httpErrorOf(() => parseCreate(body));
      assert.equal(error.field, field);
      assert.match(error.message, message);
    });
  }
});

describe('POST /v1/flags/verify bodies', () => {
  const body = { team: 'team-7', challenge: 'web-101', flag: 'CTF{5aa0afe5a76ec535c98e115bb5fec9ce}' };

  test('takes a team, a challenge and a flag, exactly as given', () => {
    assert.deepEqual(parse(verifySchema, body, ''), body);
    assert.deepEqual(parse(verifySchema, { ...body, flag: ' CTF{x} ' }, '').flag, ' CTF{x} ', 'no trimming: the comparison is exact');
  });

  test('a refused flag is named as a field, never quoted', () => {
    const secretish = `CTF{${'a1'.repeat(MAX_FLAG_LENGTH)}}`;
    const cases: [unknown, RegExp][] = [
      [{ ...body, flag: secretish }, /^flag: must be at most 4096 characters$/],
      [{ ...body, flag: '' }, /^flag: must not be empty$/],
      [{ ...body, flag: 1234567890123 }, /^flag: must be a string$/],
      [{ ...body, extra: 'CTF{leak}' }, /^extra: is not a field of this request$/],
    ];
    for (const [input, message] of cases) {
      const error = httpErrorOf(() => parse(verifySchema, input, ''));
      assert.equal(error.status, 400);
      assert.match(error.message, message);
      assert.ok(!error.message.includes('a1a1') && !error.message.includes('12345678') && !error.message.includes('leak'), error.message);
    }
  });
});

describe('checkFlag', () => {
  const perTeam = challenge('web-101', { flag: flagOf('PerTeam') });
  const perInstance = challenge('pwn-1', { flag: flagOf('PerInstance', { format: 'flag{%s}', delivery: 'File' }) });
  const staticFlag = challenge('misc-1', { flag: flagOf('Static', { static: { secretKeyRef: { name: 'misc-1-flag', key: 'flag' } } }) });
  const team7 = renderFlag('CTF{%s}', perTeamFlagPart(KEY, { namespace: NS, challenge: 'web-101', team: 'team-7' }));
  const team12 = renderFlag('CTF{%s}', perTeamFlagPart(KEY, { namespace: NS, challenge: 'web-101', team: 'team-12' }));
  const none = (): Promise<ChallengeInstance | undefined> => Promise.resolve(undefined);

  test("PerTeam: the team's own derived flag is correct; another team's, or a near miss, is not", async () => {
    const flags = new MemoryFlags();
    const check = (team: string, given: string): ReturnType<typeof checkFlag> => checkFlag(flags, { challenge: perTeam, team, given, instance: none });
    assert.deepEqual(await check('team-7', team7), { kind: 'checked', correct: true });
    assert.deepEqual(await check('team-12', team12), { kind: 'checked', correct: true });
    assert.deepEqual(await check('team-7', team12), { kind: 'checked', correct: false }, "another team's flag");
    for (const near of [team7.toUpperCase(), `${team7} `, team7.slice(0, -1), `${team7}}`, '']) assert.deepEqual(await check('team-7', near), { kind: 'checked', correct: false }, JSON.stringify(near));
    assert.ok(flags.reads.every((read) => read === 'key'), 'a per-team check reads the key only');
  });

  test("PerInstance: the part in the Secret of the team's instance of that Challenge; without one, nothing is correct", async () => {
    const flags = new MemoryFlags();
    const own = instance('pwn-1-team-7', 'team-7', { challengeRef: { name: 'pwn-1' } }, { uid: 'uid-7' });
    flags.parts.set('uid-7', '0123456789abcdef0123456789abcdef');
    const given = 'flag{0123456789abcdef0123456789abcdef}';
    const check = (found: ChallengeInstance | undefined, team = 'team-7', flag = given): ReturnType<typeof checkFlag> =>
      checkFlag(flags, { challenge: perInstance, team, given: flag, instance: () => Promise.resolve(found) });
    assert.deepEqual(await check(own), { kind: 'checked', correct: true });
    assert.deepEqual(flags.reads, [`part ${NS}/pwn-1-team-7 uid-7`], 'read by the instance uid, never created');
    assert.deepEqual(await check(own, 'team-7', 'flag{0123456789abcdef0123456789abcdee}'), { kind: 'checked', correct: false });
    assert.deepEqual(await check(undefined), { kind: 'checked', correct: false }, 'no instance, no flag was handed out');
    assert.deepEqual(await check(instance('pwn-1-team-7', 'team-7', { challengeRef: { name: 'pwn-1' } }, { uid: 'uid-new' })), { kind: 'checked', correct: false }, 'an instance made again has a part of its own (none yet)');
    assert.deepEqual(await check(instance('pwn-1-team-7', 'team-8', { challengeRef: { name: 'pwn-1' } }, { uid: 'uid-7' })), { kind: 'checked', correct: false }, "another team's instance under that name");
    assert.deepEqual(await check(instance('pwn-1-team-7', 'team-7', { challenge: 'pwn-1', image: 'x' }, { uid: 'uid-7' })), { kind: 'checked', correct: false }, 'a direct instance gets no flag from the Challenge');
  });

  test("Static: the organisers' Secret, the same flag for every team", async () => {
    const flags = new MemoryFlags();
    flags.statics.set(`${NS}/misc-1-flag:flag`, 'same-for-all');
    for (const team of ['team-7', 'team-12']) {
      assert.deepEqual(await checkFlag(flags, { challenge: staticFlag, team, given: 'CTF{same-for-all}', instance: none }), { kind: 'checked', correct: true });
    }
    assert.deepEqual(await checkFlag(flags, { challenge: staticFlag, team: 'team-7', given: 'same-for-all', instance: none }), { kind: 'checked', correct: false }, 'the format applies');
  });

  test('a Challenge without a flag has none to check', async () => {
    assert.deepEqual(await checkFlag(new MemoryFlags(), { challenge: challenge('web-2'), team: 'team-7', given: 'CTF{x}', instance: none }), { kind: 'noFlag' });
  });

  test("the flag store's failures come through as they are, and carry no flag", async () => {
    const flags = new MemoryFlags();
    flags.failure = permanent('FlagKeyInvalid', 'The flag key Secret ctfleet-system/ctfleet-flag-key (CTFLEET_FLAG_KEY_SECRET) does not exist');
    await assert.rejects(checkFlag(flags, { challenge: perTeam, team: 'team-7', given: team7, instance: none }), (error: unknown) => {
      assert.equal((error as { code?: string }).code, 'FlagKeyInvalid');
      assert.ok(!(error as Error).message.includes(team7.slice(4, -1)));
      return true;
    });
    await assert.rejects(checkFlag(new MemoryFlags(), { challenge: staticFlag, team: 'team-7', given: 'CTF{guess}', instance: none }), /does not exist/);
  });
});

describe('platformChallengeViews', () => {
  test('shows names, ports, lifetime, flag kind and delivery and instance counts; never the image, env, format or flag Secret', () => {
    const declared = [
      challenge('web-101', { lifetime: { defaultSeconds: 600, maxSeconds: 3600 }, flag: flagOf('Static', { static: { secretKeyRef: { name: 'web-101-flag', key: 'flag' } } }) }),
      challenge('echo-200', { ports: [{ name: 'echo', containerPort: 7, protocol: 'UDP' }] }, { deletionTimestamp: '2026-01-02T00:00:00Z' }),
    ];
    const instances = [
      instance('web-101-team-1', 'team-1', { challengeRef: { name: 'web-101' } }, { phase: 'Running' }),
      instance('web-101-team-2', 'team-2', { challengeRef: { name: 'web-101' } }, { phase: 'Failed' }),
      instance('web-101-team-3', 'team-3', { challengeRef: { name: 'web-101' } }, { phase: 'Running', deleting: true }),
      instance('web-101-direct', 'team-4', { challenge: 'web-101', image: 'x' }, { phase: 'Running' }),
    ];
    const views = platformChallengeViews(declared, instances);
    assert.deepEqual(views, [
      {
        name: 'web-101',
        ports: [{ name: 'http', protocol: 'TCP' }],
        lifetime: { defaultSeconds: 600, maxSeconds: 3600 },
        flag: { kind: 'Static', delivery: 'Env' },
        instances: { total: 3, running: 1 },
        deleting: false,
        createdAt: '2026-01-01T00:00:00Z',
      },
      { name: 'echo-200', ports: [{ name: 'echo', protocol: 'UDP' }], lifetime: { defaultSeconds: null, maxSeconds: null }, flag: null, instances: { total: 0, running: 0 }, deleting: true, createdAt: '2026-01-01T00:00:00Z' },
    ]);
    const text = JSON.stringify(views);
    for (const hidden of ['registry.example', 'SECRET_SAUCE', 'organisers-only', 'web-101-flag', 'CTF{', '8080']) assert.ok(!text.includes(hidden), `${hidden} is not shown`);
  });
});
