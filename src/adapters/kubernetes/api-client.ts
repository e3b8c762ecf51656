import {
  createConfiguration,
  ServerConfiguration,
  type KubeConfig,
  type RequestContext,
} from '@kubernetes/client-node';
import { VERSION } from '../../version.ts';

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

/** What this process calls itself to the API server: audit logs and request metrics name it. */
let userAgent = `ctfleet/${VERSION}`;

/** Names the process's role in the User-Agent of every request (`ctfleet/<version> (controller)`). */
export function identifyAs(role: string): void {
  userAgent = `ctfleet/${VERSION} (${role})`;
}

/**
 * Like `kubeConfig.makeApiClient`, but every request of the process shares one
 * connection pool.
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
  let shared: Dispatcher | undefined;
  const pooledAuth = {
    getName: () => 'ctfleet-pooled',
    applySecurityAuthentication: async (context: RequestContext): Promise<void> => {
      await kubeConfig.applySecurityAuthentication(context);
      context.setHeaderParam('User-Agent', userAgent);
      const created = context.getDispatcher();
      if (shared === undefined) shared = created;
      else if (created !== undefined && created !== shared) {
        context.setDispatcher(shared);
        void created.close();
      }
    },
  };
  return new ApiClass(createConfiguration({ baseServer: new ServerConfiguration(cluster.server, {}), authMethods: { default: pooledAuth } }));
}
