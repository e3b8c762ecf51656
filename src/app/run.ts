import type { RuntimeConfig } from '../config/config.ts';
import { createLogger } from '../observability/logger.ts';
import { identifyAs } from '../adapters/kubernetes/api-client.ts';
import { startHealthServer } from '../http/health-server.ts';
import { Metrics } from '../observability/metrics.ts';
import type { Component } from './component.ts';

export type Role = 'controller' | 'worker' | 'api' | 'all';

/** Time left for closing connections after the in-flight work's own timeout. */
const SHUTDOWN_SLACK_MS = 5_000;

/**
 * Runs ctfleet in the given role until SIGTERM or SIGINT, then closes the
 * components in reverse start order. Resolves with the process exit code.
 */
export async function runRole(role: Role, config: RuntimeConfig): Promise<number> {
  const logger = createLogger(role, config.logLevel);
  identifyAs(role);
  const components: Component[] = [];
  let lostLeadership: () => void = () => undefined;
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => {
      resolve('SIGTERM');
    });
    process.once('SIGINT', () => {
      resolve('SIGINT');
    });
    lostLeadership = () => {
      resolve('LostLeadership');
    };
  });
  // `all` includes the API only when a token source is configured.
  const withApi = role === 'api' || (role === 'all' && (config.api.tokensFile !== undefined || config.api.tokensSecret !== undefined));
  const expected = (role === 'all' ? 2 : role === 'api' ? 0 : 1) + (withApi ? 1 : 0);
  // Each role's composition root is loaded only when the role runs: what a role
  // does not use (dockerode in a controller, the API's routes in a worker) never
  // sits in its memory. Loaded before the health server listens: evaluating the
  // modules holds the event loop for a second or two, which is start-up, not a
  // pause of a serving process.
  const roots = {
    worker: role === 'worker' || role === 'all' ? await import('./worker-root.ts') : undefined,
    controller: role === 'controller' || role === 'all' ? await import('./controller-root.ts') : undefined,
    api: withApi ? await import('./api-root.ts') : undefined,
  };
  // Health next: while a dependency is down at start, /readyz says so and
  // /healthz still answers.
  const metrics = new Metrics();
  const health = await startHealthServer(config.http.host, config.http.port, () => {
    if (components.length < expected) return { startup: () => Promise.resolve({ name: 'startup', healthy: false, detail: 'components are starting' }) };
    return Object.fromEntries(components.flatMap((component) => Object.entries(component.readiness).map(([name, check]) => [`${component.name}.${name}`, check])));
  }, metrics, logger);
  if (roots.worker !== undefined) components.push(await roots.worker.startWorker(config, logger, metrics));
  if (roots.controller !== undefined) components.push(await roots.controller.startController(config, logger, metrics, lostLeadership));
  if (roots.api !== undefined) components.push(await roots.api.startApi(config, logger));

  // Losing the lease ends the process with exit code 1 (as controller-runtime
  // does): the pod restarts and rejoins the election as a standby.
  const signal = await stopped;
  logger.info({ signal }, 'Shutting down');
  const deadline = setTimeout(() => {
    logger.error('Shutdown deadline passed; exiting with work unfinished');
    process.exit(1);
  }, config.shutdownTimeoutMs + SHUTDOWN_SLACK_MS);
  deadline.unref();
  for (const component of components.reverse()) {
    await component.close().catch((error: unknown) => {
      logger.error({ err: error, component: component.name }, 'Closing a component failed');
    });
  }
  await health.close();
  clearTimeout(deadline);
  logger.info('Stopped');
  return signal === 'LostLeadership' ? 1 : 0;
}
