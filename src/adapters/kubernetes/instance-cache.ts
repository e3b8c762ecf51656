import { CustomObjectsApi, makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import { instanceKey, type ChallengeInstance } from '../../domain/challenge-instance.ts';
import { GROUP, PLURAL, VERSION } from '../../domain/names.ts';
import type { InstanceCache } from '../../domain/ports.ts';
import type { Logger } from '../../observability/logger.ts';
import { makePooledApiClient } from './api-client.ts';
import { toInstance } from './instance-object.ts';

type RawInformer = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

const ALL = '*';

/**
 * Informers over the ChallengeInstances of the watched namespaces (one informer
 * over the whole cluster when no namespaces are given), with a uid index.
 *
 * Caveats: client-node's informer re-lists by itself only on 410 Gone; on any other
 * error it emits `error` and stops. This cache restarts it with capped exponential
 * backoff, forever, so a flapping API server never leaves the controller deaf. A
 * re-list emits every object again, which only enqueues keys (harmless).
 */
export class KubeInstanceCache implements InstanceCache {
  /** By namespace, or under ALL for the cluster-wide informer. */
  private readonly informers = new Map<string, RawInformer>();
  private readonly uids = new Map<string, string>();
  private synced = false;
  private closed = false;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private readonly logger: Logger;

  constructor(kubeConfig: KubeConfig, logger: Logger, namespaces: readonly string[] = []) {
    const api = makePooledApiClient(kubeConfig, CustomObjectsApi);
    this.logger = logger;
    type ListResult = { items: KubernetesObject[]; metadata: { resourceVersion: string } };
    if (namespaces.length === 0) {
      this.informers.set(
        ALL,
        makeInformer<KubernetesObject>(kubeConfig, `/apis/${GROUP}/${VERSION}/${PLURAL}`, async () => (await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })) as ListResult),
      );
    }
    for (const namespace of namespaces) {
      this.informers.set(
        namespace,
        makeInformer<KubernetesObject>(
          kubeConfig,
          `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`,
          async () => (await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })) as ListResult,
        ),
      );
    }
  }

  async start(onChange: (key: string) => void): Promise<void> {
    await Promise.all([...this.informers.values()].map((informer) => this.startInformer(informer, onChange)));
    this.synced = true;
  }

  private async startInformer(informer: RawInformer, onChange: (key: string) => void): Promise<void> {
    let restartDelayMs = 500;
    const notify = (raw: KubernetesObject): void => {
      const { namespace, name, uid } = raw.metadata ?? {};
      if (namespace === undefined || name === undefined) return;
      const key = `${namespace}/${name}`;
      if (uid !== undefined) this.uids.set(uid, key);
      onChange(key);
    };
    informer.on('add', notify);
    informer.on('update', notify);
    informer.on('delete', (raw) => {
      if (raw.metadata?.uid !== undefined) this.uids.delete(raw.metadata.uid);
      notify(raw);
    });
    informer.on('connect', () => {
      restartDelayMs = 500;
    });
    informer.on('error', (error: unknown) => {
      if (this.closed) return;
      this.logger.warn({ err: error, retryInMs: restartDelayMs }, 'ChallengeInstance watch failed; restarting it');
      const timer = setTimeout(() => {
        this.restartTimers.delete(timer);
        informer.start().catch(() => undefined);
      }, restartDelayMs);
      this.restartTimers.add(timer);
      restartDelayMs = Math.min(restartDelayMs * 2, 30_000);
    });
    await this.startWithRetry(informer);
  }

  /** The first list must succeed before the cache counts as synced; retry until it does. */
  private async startWithRetry(informer: RawInformer): Promise<void> {
    let delay = 500;
    for (;;) {
      try {
        await informer.start();
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
    const raw = (this.informers.get(namespace) ?? this.informers.get(ALL))?.get(name, namespace);
    return raw === undefined ? undefined : toInstance(raw);
  }

  keys(): string[] {
    return [...this.informers.values()].flatMap((informer) => informer.list().map((raw) => instanceKey(raw as unknown as ChallengeInstance)));
  }

  keyForUid(uid: string): string | undefined {
    return this.uids.get(uid);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.restartTimers) clearTimeout(timer);
    await Promise.all([...this.informers.values()].map((informer) => informer.stop()));
  }
}
