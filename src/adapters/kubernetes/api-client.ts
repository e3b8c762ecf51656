import { Readable } from 'node:stream';
import {
  createConfiguration,
  ResponseContext,
  ServerConfiguration,
  wrapHttpLibrary,
  type KubeConfig,
  type RequestContext,
} from '@kubernetes/client-node';
import { Agent, request } from 'undici';
import { VERSION } from '../../version.ts';

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;
type RequestOptions = NonNullable<Parameters<typeof request>[1]>;

/**
 * How long a connection to the API server may sit idle before it is closed:
 * undici's default, 4 s, made the first request after every pause (a worker
 * waiting for its next job, a controller between instances) open a new TLS
 * connection, +12 ms on this machine and ~28 ms of CPU for its TLS context.
 * Well inside the API server's own idle timeout (90 s) and the 60 s of common
 * load balancers; TCP keep-alive probes (client-node's, every 30 s) go on.
 */
export const API_IDLE_TIMEOUT_MS = 30_000;

/**
 * Connections a process keeps to the API server at most: as many requests at
 * once, the rest wait their turn. Well above what a controller's or a worker's
 * passes make at once by default (16 each, plus Events and sweeps), well below a
 * burst's worth of TLS handshakes.
 */
export const API_CONNECTIONS = 64;

/** What this process calls itself to the API server: audit logs and request metrics name it. */
let userAgent = `ctfleet/${VERSION}`;

/** Names the process's role in the User-Agent of every request (`ctfleet/<version> (controller)`). */
export function identifyAs(role: string): void {
  userAgent = `ctfleet/${VERSION} (${role})`;
}

/** One pool per kubeconfig, shared by every API class made from it. */
const pools = new WeakMap<KubeConfig, Promise<Dispatcher | undefined>>();

/**
 * Like `kubeConfig.makeApiClient`, but every request of the process shares one
 * connection pool (one per kubeconfig, whichever API class asks).
 *
 * Why: client-node 2.x builds a new undici dispatcher for each request, so each
 * API call paid a fresh TLS context and handshake; profiled under load, that was
 * the controller's largest CPU cost after garbage collection.
 *
 * Assumptions: the cluster's TLS settings (CA, client certificate) do not change
 * while the process runs; bearer tokens, which may rotate, still come from the
 * kubeconfig on every request as headers.
 */
export function makePooledApiClient<T>(kubeConfig: KubeConfig, ApiClass: new (configuration: ReturnType<typeof createConfiguration>) => T): T {
  const cluster = kubeConfig.getCurrentCluster();
  if (cluster === null) throw new Error('the kubeconfig has no current cluster');
  const pooledAuth = {
    getName: () => 'ctfleet-pooled',
    applySecurityAuthentication: async (context: RequestContext): Promise<void> => {
      await kubeConfig.applySecurityAuthentication(context);
      context.setHeaderParam('User-Agent', userAgent);
      const created = context.getDispatcher();
      let shared = pools.get(kubeConfig);
      if (shared === undefined) {
        shared = longLivedDispatcher(kubeConfig, created);
        pools.set(kubeConfig, shared);
        // A failure (credentials unreadable, say) is this request's; the next one tries again.
        shared.catch(() => pools.delete(kubeConfig));
      }
      const dispatcher = await shared;
      if (dispatcher !== undefined && created !== dispatcher) {
        context.setDispatcher(dispatcher);
        void created?.close().catch(() => undefined);
      }
    },
  };
  return new ApiClass(createConfiguration({ baseServer: new ServerConfiguration(cluster.server, {}), authMethods: { default: pooledAuth }, httpApi: UNDICI_REQUEST_LIBRARY }));
}

/**
 * client-node's requests sent with undici's `request` instead of its `fetch`.
 *
 * Why: `fetch` wraps every request and response in WHATWG objects and streams.
 * For the small JSON bodies ctfleet sends and reads, that wrapping was most of a
 * request's CPU: a status write (server-side apply) cost the worker 3.0–3.2 ms of
 * CPU through `fetch` and 1.4 ms through `request`, on the same pooled
 * connections (docs/benchmark.md, `npm run bench:worker-cost`).
 *
 * The body is read whole before the response is handed on, so a response nobody
 * reads never holds its connection. Streams (watches, logs) do not come this way:
 * client-node's Watch uses its own `fetch`.
 */
const UNDICI_REQUEST_LIBRARY = wrapHttpLibrary({
  async send(context: RequestContext): Promise<ResponseContext> {
    const body = context.getBody();
    // client-node sends JSON (a string); forms are not among the calls ctfleet makes.
    if (body !== undefined && typeof body !== 'string') throw new Error('ctfleet sends only string bodies to the API server');
    const signal = context.getSignal();
    const dispatcher = context.getDispatcher();
    const response = await request(context.getUrl(), {
      method: context.getHttpMethod() as RequestOptions['method'],
      headers: context.getHeaders(),
      ...(body === undefined ? {} : { body }),
      ...(signal === undefined ? {} : { signal }),
      ...(dispatcher === undefined ? {} : { dispatcher }),
    });
    const data = Buffer.from(await response.body.arrayBuffer());
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(response.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    return new ResponseContext(response.statusCode, headers, {
      text: () => Promise.resolve(data.toString('utf8')),
      binary: () => Promise.resolve(data),
      stream: () => Readable.toWeb(Readable.from([data])) as ReadableStream<Uint8Array>,
    });
  },
});

/**
 * The process's connection pool: client-node's own TLS settings for the cluster
 * (CA, client certificate, server name), with connections kept for
 * {@link API_IDLE_TIMEOUT_MS}. A proxied or plain-HTTP cluster keeps the
 * dispatcher client-node built (`fallback`), pooled as before.
 */
async function longLivedDispatcher(kubeConfig: KubeConfig, fallback: Dispatcher | undefined): Promise<Dispatcher | undefined> {
  const https: Record<string, unknown> = {};
  await kubeConfig.applyToHTTPSOptions(https);
  const keys = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;
  const agentOptions = Object.fromEntries(keys.filter((key) => https[key] !== undefined).map((key) => [key, https[key]]));
  const options = kubeConfig.createDispatcherOptions(kubeConfig.getCurrentCluster(), agentOptions);
  if (options.type !== 'agent') return fallback;
  // HTTP/1.1 (undici 8 would offer HTTP/2): for the small JSON requests ctfleet
  // makes, HTTP/2's framing cost the client more CPU a request (a status write
  // 1.9 ms against 1.4 ms, docs/benchmark.md). One request at a time on each
  // connection, so requests at once each take a connection, up to API_CONNECTIONS;
  // more wait in the pool's queue for one to come free.
  return new Agent({ connect: options.connect, keepAliveTimeout: API_IDLE_TIMEOUT_MS, keepAliveMaxTimeout: API_IDLE_TIMEOUT_MS, allowH2: false, connections: API_CONNECTIONS });
}
