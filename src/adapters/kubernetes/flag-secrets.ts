import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { conflict, isNotFound, permanent } from '../../domain/errors.ts';
import { FLAG_KEY_MIN_BYTES, randomFlagPart } from '../../domain/flags.ts';
import { API_VERSION, FLAG_KEY_SECRET_KEY, FLAG_PART_SECRET_KEY, flagSecretName, GROUP, KIND, LABELS, MANAGED_BY } from '../../domain/names.ts';
import { SYSTEM_CLOCK, type Clock, type FlagOwner, type FlagStore, type SecretKeyRef } from '../../domain/ports.ts';
import { makePooledApiClient } from './api-client.ts';
import { translateKubeError } from './errors.ts';

/** How long the deployment key is kept in memory before it is read again. */
export const FLAG_KEY_CACHE_MS = 60_000;

/** The longest value accepted from a flag Secret: a flag is a line, not a file. */
const MAX_FLAG_VALUE_BYTES = 4096;

export interface FlagSecretsSettings {
  /** CTFLEET_FLAG_KEY_SECRET: where the deployment key lives; undefined when the setting is unset. */
  keySecret: { namespace: string; name: string } | undefined;
  /** Defaults to {@link FLAG_KEY_CACHE_MS}. */
  keyCacheMs?: number;
  clock?: Clock;
}

/**
 * {@link FlagStore} over Kubernetes Secrets.
 *
 * - The deployment key: key `key` of the Secret CTFLEET_FLAG_KEY_SECRET names, its bytes
 *   as stored (at least 32). Read once per {@link FLAG_KEY_CACHE_MS} at most; concurrent
 *   callers share one read; a failed read is not cached.
 * - An instance's random part: key `flag-part` of the Secret `flagSecretName(name, uid)`
 *   in the instance's namespace, immutable, labelled managed-by ctfleet and
 *   `ctfleet.io/instance`, with the instance as its controller owner (the garbage
 *   collector deletes it with the instance).
 * - A static flag: any key of any Secret of the namespace, as the challenge names it.
 *
 * Guarantees: no key, part or flag reaches an error message (messages name Secrets,
 * keys and sizes only); nothing here logs. Errors are permanent `FlagKeyInvalid` /
 * `FlagSecretInvalid` for what a person must fix, or as `translateKubeError` classifies
 * the API server's answer (its messages carry no Secret data).
 */
export class KubeFlagSecrets implements FlagStore {
  private readonly core: CoreV1Api;
  private readonly keySecret: { namespace: string; name: string } | undefined;
  private readonly keyCacheMs: number;
  private readonly clock: Clock;
  private cachedKey: { key: Buffer; until: number } | undefined;
  private keyRead: Promise<Buffer> | undefined;

  constructor(kubeConfig: KubeConfig, settings: FlagSecretsSettings) {
    this.core = makePooledApiClient(kubeConfig, CoreV1Api);
    this.keySecret = settings.keySecret;
    this.keyCacheMs = settings.keyCacheMs ?? FLAG_KEY_CACHE_MS;
    this.clock = settings.clock ?? SYSTEM_CLOCK;
  }

  async deploymentKey(): Promise<Buffer> {
    const cached = this.cachedKey;
    // A copy: a caller that fills its buffer with zeros does not wipe the cache.
    if (cached !== undefined && this.clock.now() < cached.until) return Buffer.from(cached.key);
    this.keyRead ??= this.readKey().finally(() => {
      this.keyRead = undefined;
    });
    return Buffer.from(await this.keyRead);
  }

  private async readKey(): Promise<Buffer> {
    if (this.keySecret === undefined) {
      throw permanent('FlagKeyInvalid', 'CTFLEET_FLAG_KEY_SECRET is not set: per-team flags need a deployment key (docs/flags.md)');
    }
    const { namespace, name } = this.keySecret;
    const where = `Secret ${namespace}/${name} (CTFLEET_FLAG_KEY_SECRET)`;
    const secret = await this.read(namespace, name, `get the flag key ${where}`);
    if (secret === undefined) throw permanent('FlagKeyInvalid', `The flag key ${where} does not exist: create it with a key "${FLAG_KEY_SECRET_KEY}" of at least ${FLAG_KEY_MIN_BYTES} bytes (docs/flags.md)`);
    const encoded = secret.data?.[FLAG_KEY_SECRET_KEY];
    if (encoded === undefined) throw permanent('FlagKeyInvalid', `The flag key ${where} has no key "${FLAG_KEY_SECRET_KEY}"`);
    const key = Buffer.from(encoded, 'base64');
    if (key.length < FLAG_KEY_MIN_BYTES) {
      throw permanent('FlagKeyInvalid', `The flag key ${where} holds ${key.length} bytes under "${FLAG_KEY_SECRET_KEY}"; at least ${FLAG_KEY_MIN_BYTES} are needed (e.g. openssl rand -hex 32)`);
    }
    this.cachedKey = { key, until: this.clock.now() + this.keyCacheMs };
    return key;
  }

  /**
   * Get-or-create, reading first: after the first start every call is one GET.
   * Guarantees: one Secret and one part per instance, whoever calls and however often;
   * a create that loses a race (409) returns the winner's part after the same checks.
   * Caveat: the Secret is immutable, so the part of a running instance never changes
   * under it; deleting the Secret by hand gives the instance a new part on its next start.
   */
  async instanceFlagPart(owner: FlagOwner): Promise<string> {
    const { namespace } = owner;
    const name = flagSecretName(owner.name, owner.uid);
    const existing = await this.read(namespace, name, `get the flag Secret ${namespace}/${name}`);
    if (existing !== undefined) return this.partOf(existing, owner, name);
    const part = randomFlagPart();
    try {
      await this.core.createNamespacedSecret({ namespace, body: this.instanceSecret(owner, name, part) });
      return part;
    } catch (error) {
      const translated = translateKubeError(error, `create the flag Secret ${namespace}/${name}`);
      if (translated.retry !== 'conflict') throw translated;
    }
    // Another caller created it first: its part is the instance's.
    const winner = await this.read(namespace, name, `get the flag Secret ${namespace}/${name}`);
    if (winner === undefined) throw conflict('Conflict', `The flag Secret ${namespace}/${name} was created and deleted again while ctfleet created it`);
    return this.partOf(winner, owner, name);
  }

  /**
   * The instance's part if its flag Secret exists, without ever creating it (one GET):
   * what checking a flag needs. Undefined when the instance has no part yet (its
   * container never started, so no flag was handed out). The same owner checks as
   * {@link instanceFlagPart}: a Secret of that name not owned by this instance is
   * refused, never read as its part.
   */
  async existingInstanceFlagPart(owner: FlagOwner): Promise<string | undefined> {
    const { namespace } = owner;
    const name = flagSecretName(owner.name, owner.uid);
    const existing = await this.read(namespace, name, `get the flag Secret ${namespace}/${name}`);
    return existing === undefined ? undefined : this.partOf(existing, owner, name);
  }

  async staticFlag(namespace: string, ref: SecretKeyRef): Promise<string> {
    const where = `Secret ${namespace}/${ref.name} (spec.flag.static.secretKeyRef)`;
    const secret = await this.read(namespace, ref.name, `get the static flag ${where}`);
    if (secret === undefined) throw permanent('FlagSecretInvalid', `The static flag ${where} does not exist`);
    const encoded = secret.data?.[ref.key];
    if (encoded === undefined) throw permanent('FlagSecretInvalid', `The static flag ${where} has no key "${ref.key}"`);
    // `kubectl create secret --from-file` keeps the file's last newline; a flag never ends in one.
    const value = decodeValue(encoded).replace(/\r?\n$/, '');
    const problem = valueProblem(value);
    if (problem !== undefined) throw permanent('FlagSecretInvalid', `The static flag ${where}: key "${ref.key}" ${problem}`);
    return value;
  }

  private partOf(secret: V1Secret, owner: FlagOwner, name: string): string {
    const where = `The flag Secret ${owner.namespace}/${name}`;
    const controller = (secret.metadata?.ownerReferences ?? []).find((reference) => reference.controller === true);
    // By group, not version: a Secret made under v1alpha1 stays the instance's after an API version change.
    if (controller?.uid !== owner.uid || controller.kind !== KIND || controller.apiVersion.split('/')[0] !== GROUP) {
      const holder = controller === undefined ? 'no controller owner' : `controller owner ${controller.kind}/${controller.name} (uid ${controller.uid})`;
      throw permanent('FlagSecretInvalid', `${where} exists with ${holder}, not ChallengeInstance ${owner.namespace}/${owner.name} (uid ${owner.uid}): ctfleet never reuses a flag Secret it did not create for this instance; delete it if it is stale`);
    }
    const encoded = secret.data?.[FLAG_PART_SECRET_KEY];
    if (encoded === undefined) throw permanent('FlagSecretInvalid', `${where} has no key "${FLAG_PART_SECRET_KEY}"; delete it and ctfleet creates a new one`);
    const part = decodeValue(encoded);
    const problem = valueProblem(part);
    if (problem !== undefined) throw permanent('FlagSecretInvalid', `${where}: key "${FLAG_PART_SECRET_KEY}" ${problem}`);
    return part;
  }

  private instanceSecret(owner: FlagOwner, name: string, part: string): V1Secret {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace: owner.namespace,
        labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.instance]: owner.name, [LABELS.uid]: owner.uid },
        // blockOwnerDeletion stays unset: it would need update on the instance's finalizers.
        ownerReferences: [{ apiVersion: API_VERSION, kind: KIND, name: owner.name, uid: owner.uid, controller: true }],
      },
      type: 'Opaque',
      immutable: true,
      data: { [FLAG_PART_SECRET_KEY]: Buffer.from(part, 'utf8').toString('base64') },
    };
  }

  /** The Secret, or undefined when it does not exist; other failures classified. */
  private async read(namespace: string, name: string, what: string): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ namespace, name });
    } catch (error) {
      const translated = translateKubeError(error, what);
      if (isNotFound(translated)) return undefined;
      throw translated;
    }
  }
}

function decodeValue(encoded: string): string {
  return Buffer.from(encoded, 'base64').toString('utf8');
}

/** Why a value cannot be a flag or a part, without quoting it; undefined when it can. */
function valueProblem(value: string): string | undefined {
  if (value === '') return 'is empty';
  if (Buffer.byteLength(value, 'utf8') > MAX_FLAG_VALUE_BYTES) return `holds more than ${MAX_FLAG_VALUE_BYTES} bytes`;
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(value)) return 'holds control characters or line breaks';
  return undefined;
}
