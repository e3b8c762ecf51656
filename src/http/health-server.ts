import express from 'express';
import { checkDependencies, type DependencyCheck } from '../health/dependency-check.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { listen, type Listening } from './listen.ts';

/** Readiness checks stay well under a kubelet probe's default 1 s timeout… plus slack. */
const CHECK_TIMEOUT_MS = 2_000;

export type HealthServer = Listening;

/**
 * `/healthz`: the process answers (liveness; never checks dependencies, so an
 * outage of Redis or the API server does not get the pod restarted).
 * `/readyz`: every readiness check passes; 503 with each check's result
 * otherwise, so an outage shows as not-ready while the process keeps retrying.
 * `/metrics`: Prometheus text format from ctfleet's own registry.
 * Nothing else: the platform API has a port of its own (`api-server.ts`), so
 * exposing the API never exposes these.
 */
export async function startHealthServer(
  host: string,
  port: number,
  checks: () => Record<string, DependencyCheck>,
  metrics: Metrics,
  logger: Logger,
): Promise<HealthServer> {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_request, response) => {
    response.json({ status: 'ok' });
  });
  app.get('/readyz', async (_request, response) => {
    const results = await checkDependencies(checks(), CHECK_TIMEOUT_MS);
    const ready = results.every((result) => result.healthy);
    response.status(ready ? 200 : 503).json({ ready, checks: results });
  });
  app.get('/metrics', async (_request, response) => {
    const text = await metrics.exposition();
    response.type(metrics.contentType).send(text);
  });
  const server = await listen(app, host, port);
  logger.info({ address: `${host}:${server.port}` }, `Serving /healthz, /readyz and /metrics on ${host}:${server.port}`);
  return server;
}
