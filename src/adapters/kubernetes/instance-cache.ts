import { CustomObjectsApi, makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import { instanceKey, type ChallengeInstance } from '../../domain/challenge-instance.ts';
import { GROUP, PLURAL, VERSION } from '../../domain/names.ts';
import type { InstanceCache } from '../../domain/ports.ts';
import type { Logger } from '../../observability/logger.ts';
import { makePooledApiClient } from './api-client.ts';
import { toInstance } from './instance-object.ts';

type RawInformer = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

/**
 * An informer over every ChallengeInstance in the cluster, with a uid index.
 *
 * Caveats: client-node's informer re-lists by itself only on 410 Gone; on any other
 * error it emits `error` and stops. This cache restarts it with capped exponential
 * backoff, forever, so a flapping API server never leaves the controller deaf. A
 * re-list emits every object again, which only enqueues keys (harmless).
 */
export class KubeInstanceCache implements InstanceCache {
  private readonly informer: RawInformer;
  private readonly uids = new Map<string, string>();
  private synced = false;
  private closed = false;
  private restartDelayMs = 500;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly logger: Logger;

  constructor(kubeConfig: KubeConfig, logger: Logger) {
    const api = makePooledApiClient(kubeConfig, CustomObjectsApi);
    this.logger = logger;
    this.informer = makeInformer<KubernetesObject>(
      kubeConfig,
      `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      async () => (await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })) as { items: KubernetesObject[]; metadata: { resourceVersion: string } },
    );
  }

  async start(onChange: (key: string) => void): Promise<void> {
    const notify = (raw: KubernetesObject): void => {
      const { namespace, name, uid } = raw.metadata ?? {};
      if (namespace === undefined || name === undefined) return;
      const key = `${namespace}/${name}`;
      if (uid !== undefined) this.uids.set(uid, key);
      onChange(key);
    };
    this.informer.on('add', notify);
    this.informer.on('update', notify);
    this.informer.on('delete', (raw) => {
      if (raw.metadata?.uid !== undefined) this.uids.delete(raw.metadata.uid);
      notify(raw);
    });
    this.informer.on('connect', () => {
      this.restartDelayMs = 500;
    });
    this.informer.on('error', (error: unknown) => {
      if (this.closed) return;
      this.logger.warn({ err: error, retryInMs: this.restartDelayMs }, 'ChallengeInstance watch failed; restarting it');
      this.restartTimer = setTimeout(() => {
        this.informer.start().catch(() => undefined);
      }, this.restartDelayMs);
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, 30_000);
    });
    await this.startWithRetry();
    this.synced = true;
  }

  /** The first list must succeed before the cache counts as synced; retry until it does. */
  private async startWithRetry(): Promise<void> {
    let delay = 500;
    for (;;) {
      try {
        await this.informer.start();
        return;
      } catch (error) {
        if (this.closed) return;
        this.logger.warn({ err: error, retryInMs: delay }, 'Listing ChallengeInstances failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  get(key: string): ChallengeInstance | undefined {
    const [namespace, name] = key.split('/');
    if (namespace === undefined || name === undefined) return undefined;
    const raw = this.informer.get(name, namespace);
    return raw === undefined ? undefined : toInstance(raw);
  }

  keys(): string[] {
    return this.informer.list().map((raw) => instanceKey(raw as unknown as ChallengeInstance));
  }

  keyForUid(uid: string): string | undefined {
    return this.uids.get(uid);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.restartTimer);
    await this.informer.stop();
  }
}
