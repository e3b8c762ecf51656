import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { KubeFlagSecrets, type FlagSecretsSettings } from '../../src/adapters/kubernetes/flag-secrets.ts';
import { CtfleetError } from '../../src/domain/errors.ts';
import { perTeamFlagPart } from '../../src/domain/flags.ts';
import { API_VERSION, FLAG_PART_SECRET_KEY, flagSecretName, KIND, LABELS, MANAGED_BY } from '../../src/domain/names.ts';
import type { Clock, FlagOwner } from '../../src/domain/ports.ts';
import { kubectl, manifest, prepareNamespace, webSpec, type Instances } from '../support/ctfleet.ts';
import { eventually, uniqueSuffix } from '../support/stack.ts';

// The flag store against the stack's real API server (and its garbage collector):
// the deployment key, instances' own flag Secrets, organisers' static flags.
const NS = `it-flags-${uniqueSuffix()}`;
const KEY_SECRET = 'ctfleet-flag-key';

const stack = {} as { kubeConfig: KubeConfig; core: CoreV1Api; instances: Instances };

/** A clock the test moves by hand. */
class ManualClock implements Clock {
  private ms = Date.UTC(2026, 0, 1);
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

function store(settings: Partial<FlagSecretsSettings> = {}): KubeFlagSecrets {
  return new KubeFlagSecrets(stack.kubeConfig, { keySecret: { namespace: NS, name: KEY_SECRET }, ...settings });
}

async function putSecret(name: string, data: Record<string, string>, extra: Partial<NonNullable<V1Secret['metadata']>> = {}): Promise<void> {
  await stack.core.deleteNamespacedSecret({ namespace: NS, name }).catch(() => undefined);
  await eventually(`Secret ${name} to be gone`, 10_000, async () => ((await readSecret(name)) === undefined ? true : undefined));
  const encoded = Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')]));
  await stack.core.createNamespacedSecret({ namespace: NS, body: { metadata: { name, ...extra }, data: encoded } });
}

async function readSecret(name: string): Promise<V1Secret | undefined> {
  try {
    return await stack.core.readNamespacedSecret({ namespace: NS, name });
  } catch (error) {
    if ((error as { code?: number }).code === 404) return undefined;
    throw error;
  }
}

/** A ChallengeInstance that nothing runs (Stopped), to own flag Secrets. */
async function instance(name: string): Promise<FlagOwner> {
  const applied = await kubectl(['apply', '-f', '-'], manifest(NS, name, webSpec(name, { desiredState: 'Stopped' })));
  assert.equal(applied.code, 0, applied.stderr);
  const created = await stack.instances.get(NS, name);
  assert.ok(created !== undefined);
  return { namespace: NS, name, uid: created.metadata.uid };
}

/** Rejects with a CtfleetError of this code whose message passes `check`. */
async function rejectsWith(promise: Promise<unknown>, code: string, check: (message: string) => void): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof CtfleetError, `a CtfleetError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    check(error.message);
    return true;
  });
}

describe('KubeFlagSecrets against the real API server', { concurrency: 1 }, () => {
  before(async () => {
    const prepared = await prepareNamespace(NS);
    stack.kubeConfig = prepared.kubeConfig;
    stack.instances = prepared.instances;
    stack.core = prepared.kubeConfig.makeApiClient(CoreV1Api);
  });

  after(async () => {
    await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=false']);
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  test('the deployment key is the bytes of key "key" of the Secret CTFLEET_FLAG_KEY_SECRET names, and per-team parts derived from it agree across processes', async () => {
    const key = randomBytes(48).toString('base64url');
    await putSecret(KEY_SECRET, { key });
    const one = await store().deploymentKey();
    const other = await store().deploymentKey();
    assert.deepEqual(one, Buffer.from(key));
    const names = { namespace: NS, challenge: 'web-101', team: 'team-7' };
    assert.equal(perTeamFlagPart(one, names), perTeamFlagPart(other, names));
    assert.notEqual(perTeamFlagPart(one, names), perTeamFlagPart(one, { ...names, team: 'team-12' }));
  });

  test('the key is kept in memory for its cache time only: a rotated key is seen after it, and a caller cannot spoil the cache', async () => {
    await putSecret(KEY_SECRET, { key: 'a'.repeat(40) });
    const clock = new ManualClock();
    const flags = store({ clock, keyCacheMs: 60_000 });
    const first = await flags.deploymentKey();
    first.fill(0);
    await putSecret(KEY_SECRET, { key: 'b'.repeat(40) });
    clock.advance(59_000);
    assert.equal((await flags.deploymentKey()).toString(), 'a'.repeat(40), 'still the cached key, untouched by the fill');
    clock.advance(2_000);
    assert.equal((await flags.deploymentKey()).toString(), 'b'.repeat(40), 'the rotated key');
  });

  test('a missing key Secret, a missing key or an unset setting fails FlagKeyInvalid naming CTFLEET_FLAG_KEY_SECRET', async () => {
    const missing = store({ keySecret: { namespace: NS, name: 'no-such-key' } });
    await rejectsWith(missing.deploymentKey(), 'FlagKeyInvalid', (message) => {
      assert.match(message, new RegExp(`Secret ${NS}/no-such-key \\(CTFLEET_FLAG_KEY_SECRET\\) does not exist`));
    });
    await putSecret('wrong-key-name', { password: 'x'.repeat(64) });
    await rejectsWith(store({ keySecret: { namespace: NS, name: 'wrong-key-name' } }).deploymentKey(), 'FlagKeyInvalid', (message) => {
      assert.match(message, /CTFLEET_FLAG_KEY_SECRET.*has no key "key"/);
    });
    await rejectsWith(store({ keySecret: undefined }).deploymentKey(), 'FlagKeyInvalid', (message) => {
      assert.match(message, /CTFLEET_FLAG_KEY_SECRET is not set/);
    });
    // A failure is not cached: once the Secret exists, the same store reads it.
    await putSecret('no-such-key', { key: 'c'.repeat(32) });
    assert.equal((await missing.deploymentKey()).length, 32);
  });

  test('a key shorter than 32 bytes is refused, and the message quotes none of it', async () => {
    const short = 'short-key-0123456789-abcdefghij';
    await putSecret('short-key', { key: short });
    await rejectsWith(store({ keySecret: { namespace: NS, name: 'short-key' } }).deploymentKey(), 'FlagKeyInvalid', (message) => {
      assert.match(message, /CTFLEET_FLAG_KEY_SECRET.*holds 31 bytes under "key"; at least 32/);
      assert.ok(!message.includes(short));
    });
  });

  test("an instance's part is created once: calls in a row, at once and from separate stores (as two workers) get one part, from one Secret the instance owns", async () => {
    const owner = await instance('web-team-7');
    const [first, ...others] = await Promise.all([...Array.from({ length: 8 }, () => store().instanceFlagPart(owner)), store().instanceFlagPart(owner)]);
    assert.match(first, /^[0-9a-f]{32}$/);
    for (const part of others) assert.equal(part, first);
    assert.equal(await store().instanceFlagPart(owner), first, 'a later call reads it back');
    const secrets = await stack.core.listNamespacedSecret({ namespace: NS, labelSelector: `${LABELS.uid}=${owner.uid}` });
    assert.equal(secrets.items.length, 1, 'one Secret');
    const secret = secrets.items[0] ?? assert.fail('no flag Secret');
    assert.equal(secret.metadata?.name, flagSecretName(owner.name, owner.uid));
    assert.equal(Buffer.from(secret.data?.[FLAG_PART_SECRET_KEY] ?? '', 'base64').toString(), first);
    assert.deepEqual(secret.metadata.ownerReferences?.map((reference) => [reference.apiVersion, reference.kind, reference.name, reference.uid, reference.controller]), [[API_VERSION, KIND, owner.name, owner.uid, true]]);
    assert.equal(secret.metadata.labels?.[LABELS.managedBy], MANAGED_BY);
    assert.equal(secret.metadata.labels[LABELS.instance], owner.name);
    assert.equal(secret.immutable, true);
    assert.notEqual(await store().instanceFlagPart(await instance('web-team-12')), first, 'another instance has a part of its own');
  });

  test('a Secret of that name not owned by the instance (another owner, or none) is refused and left alone, never reused', async () => {
    const owner = await instance('web-team-8');
    const stranger = await instance('web-team-9');
    const name = flagSecretName(owner.name, owner.uid);
    const planted = 'planted-part-0123456789abcdef';
    const assertRefused = async (holder: RegExp): Promise<void> => {
      await rejectsWith(store().instanceFlagPart(owner), 'FlagSecretInvalid', (message) => {
        assert.match(message, holder);
        assert.match(message, new RegExp(`not ChallengeInstance ${NS}/web-team-8 \\(uid ${owner.uid}\\)`));
        assert.ok(!message.includes(planted), 'the value is not quoted');
      });
      assert.equal(Buffer.from((await readSecret(name))?.data?.[FLAG_PART_SECRET_KEY] ?? '', 'base64').toString(), planted, 'left as it was');
    };
    await putSecret(name, { [FLAG_PART_SECRET_KEY]: planted }, { ownerReferences: [{ apiVersion: API_VERSION, kind: KIND, name: stranger.name, uid: stranger.uid, controller: true }] });
    await assertRefused(new RegExp(`controller owner ChallengeInstance/web-team-9 \\(uid ${stranger.uid}\\)`));
    await putSecret(name, { [FLAG_PART_SECRET_KEY]: planted });
    await assertRefused(/no controller owner/);
  });

  test("reading an instance's part for a flag check never creates it, and meets the same owner checks", async () => {
    const owner = await instance('web-team-13');
    const name = flagSecretName(owner.name, owner.uid);
    assert.equal(await store().existingInstanceFlagPart(owner), undefined, 'no part before the first start');
    assert.equal(await readSecret(name), undefined, 'and no Secret made');
    const part = await store().instanceFlagPart(owner);
    assert.equal(await store().existingInstanceFlagPart(owner), part, 'the part the worker made');
    const other = await instance('web-team-14');
    const planted = 'planted-part-fedcba9876543210';
    await putSecret(flagSecretName(other.name, other.uid), { [FLAG_PART_SECRET_KEY]: planted }, { ownerReferences: [{ apiVersion: API_VERSION, kind: KIND, name: owner.name, uid: owner.uid, controller: true }] });
    await rejectsWith(store().existingInstanceFlagPart(other), 'FlagSecretInvalid', (message) => {
      assert.match(message, new RegExp(`not ChallengeInstance ${NS}/web-team-14`));
      assert.ok(!message.includes(planted), 'the value is not quoted');
    });
  });

  test("an owned flag Secret without its key is refused (FlagSecretInvalid)", async () => {
    const owner = await instance('web-team-10');
    await putSecret(flagSecretName(owner.name, owner.uid), { other: 'x' }, { ownerReferences: [{ apiVersion: API_VERSION, kind: KIND, name: owner.name, uid: owner.uid, controller: true }] });
    await rejectsWith(store().instanceFlagPart(owner), 'FlagSecretInvalid', (message) => {
      assert.match(message, /has no key "flag-part"/);
    });
  });

  test('deleting the instance deletes its flag Secret (garbage collector, through the owner reference)', async () => {
    const owner = await instance('web-team-11');
    await store().instanceFlagPart(owner);
    const name = flagSecretName(owner.name, owner.uid);
    assert.ok((await readSecret(name)) !== undefined);
    // No controller runs here, but one from another test might have added its finalizer.
    await kubectl(['patch', 'challengeinstance', owner.name, '-n', NS, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    assert.equal((await kubectl(['delete', 'challengeinstance', owner.name, '-n', NS])).code, 0);
    await eventually(`flag Secret ${name} to be collected`, 60_000, async () => ((await readSecret(name)) === undefined ? true : undefined));
  });

  test('a static flag is read from the Secret and key the challenge names, one trailing newline dropped', async () => {
    await putSecret('web-101-flag', { flag: 'flag{static_web_101}\n', bad: 'two\nlines', empty: '' });
    assert.equal(await store().staticFlag(NS, { name: 'web-101-flag', key: 'flag' }), 'flag{static_web_101}');
    await rejectsWith(store().staticFlag(NS, { name: 'web-101-flag', key: 'missing' }), 'FlagSecretInvalid', (message) => {
      assert.match(message, new RegExp(`Secret ${NS}/web-101-flag \\(spec.flag.static.secretKeyRef\\) has no key "missing"`));
    });
    await rejectsWith(store().staticFlag(NS, { name: 'no-such-secret', key: 'flag' }), 'FlagSecretInvalid', (message) => {
      assert.match(message, /does not exist/);
    });
    await rejectsWith(store().staticFlag(NS, { name: 'web-101-flag', key: 'bad' }), 'FlagSecretInvalid', (message) => {
      assert.match(message, /line breaks/);
      assert.ok(!message.includes('two'));
    });
    await rejectsWith(store().staticFlag(NS, { name: 'web-101-flag', key: 'empty' }), 'FlagSecretInvalid', (message) => {
      assert.match(message, /is empty/);
    });
  });
});
