import { CustomObjectsApi, makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../../domain/names.ts';
import type { Logger } from '../../observability/logger.ts';
import { makePooledApiClient } from './api-client.ts';

type RawInformer = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

const ALL = '*';

/** Which of ctfleet's resources a cache holds, and how a raw object becomes one. */
export interface ResourceKind<T> {
  plural: string;
  /** For log lines: `ChallengeInstance`, `Challenge`. */
  kind: string;
  convert: (raw: unknown) => T;
}

/** Written by `kubectl apply`: the whole object again, which nothing here reads. */
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * Drops what no planner reads from an object the informer keeps: its
 * managedFields (a record per field manager, often larger than the spec) and
 * kubectl's copy of the applied object. client-node's informer stores the very
 * object it hands to its add and update handlers, so trimming it there trims the
 * cache: at 10,000 instances this is most of the controller's heap (docs/benchmark.md).
 */
function trim(raw: KubernetesObject): void {
  const metadata = raw.metadata;
  if (metadata === undefined) return;
  delete metadata.managedFields;
  if (metadata.annotations !== undefined && LAST_APPLIED in metadata.annotations) {
    metadata.annotations = Object.fromEntries(Object.entries(metadata.annotations).filter(([key]) => key !== LAST_APPLIED));
  }
}

type ListResult = { items: KubernetesObject[]; metadata: { resourceVersion: string; continue?: string } };

/** Objects per page of a (re)list. */
const LIST_PAGE = 500;

/**
 * A list read in pages, each page's objects trimmed as it comes: the largest
 * response held at once is one page, not every object with its managedFields.
 * The pages are one consistent snapshot (the API server's continue tokens), so
 * the watch resumes from the last page's resourceVersion.
 */
async function pagedList(fetchPage: (page: { limit: number; _continue?: string }) => Promise<ListResult>): Promise<ListResult> {
  const items: KubernetesObject[] = [];
  let next: string | undefined;
  let resourceVersion: string;
  do {
    const page = await fetchPage({ limit: LIST_PAGE, ...(next === undefined ? {} : { _continue: next }) });
    for (const item of page.items) {
      trim(item);
      items.push(item);
    }
    resourceVersion = page.metadata.resourceVersion;
    next = page.metadata.continue === undefined || page.metadata.continue === '' ? undefined : page.metadata.continue;
  } while (next !== undefined);
  return { items, metadata: { resourceVersion } };
}

/**
 * Informers over one of ctfleet's resources in the watched namespaces (one
 * informer over the whole cluster when no namespaces are given), keyed
 * `namespace/name`, with a uid index.
 *
 * Caveats: client-node's informer re-lists by itself only on 410 Gone; on any other
 * error it emits `error` and stops. This cache restarts it with capped exponential
 * backoff, forever, so a flapping API server never leaves the controller deaf. A
 * re-list emits every object again, which only enqueues keys (harmless).
 */
export class KubeObjectCache<T> {
  /** By namespace, or under ALL for the cluster-wide informer. */
  private readonly informers = new Map<string, RawInformer>();
  private readonly uids = new Map<string, string>();
  private synced = false;
  private closed = false;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private readonly logger: Logger;
  private readonly resource: ResourceKind<T>;

  constructor(kubeConfig: KubeConfig, logger: Logger, namespaces: readonly string[], resource: ResourceKind<T>) {
    this.resource = resource;
    const plural = resource.plural;
    const api = makePooledApiClient(kubeConfig, CustomObjectsApi);
    this.logger = logger;
    if (namespaces.length === 0) {
      this.informers.set(
        ALL,
        makeInformer<KubernetesObject>(kubeConfig, `/apis/${GROUP}/${VERSION}/${plural}`, () => pagedList(async (page) => (await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural, ...page })) as ListResult)),
      );
    }
    for (const namespace of namespaces) {
      this.informers.set(
        namespace,
        makeInformer<KubernetesObject>(
          kubeConfig,
          `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${plural}`,
          () => pagedList(async (page) => (await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, ...page })) as ListResult),
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
      trim(raw);
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
      this.logger.warn({ err: error, retryInMs: restartDelayMs }, `${this.resource.kind} watch failed; restarting it`);
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
        this.logger.warn({ err: error, retryInMs: delay }, `Listing ${this.resource.kind}s failed; retrying`);
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  get(key: string): T | undefined {
    const [namespace, name] = key.split('/');
    if (namespace === undefined || name === undefined) return undefined;
    const raw = (this.informers.get(namespace) ?? this.informers.get(ALL))?.get(name, namespace);
    return raw === undefined ? undefined : this.resource.convert(raw);
  }

  keys(): string[] {
    return [...this.informers.values()].flatMap((informer) => informer.list().map((raw) => `${raw.metadata?.namespace ?? ''}/${raw.metadata?.name ?? ''}`));
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
