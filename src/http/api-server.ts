import express, { type Router } from 'express';
import type { Logger } from '../observability/logger.ts';
import { listen, type Listening } from './listen.ts';

/**
 * The public port: the platform API and the dashboard, nothing else. `/healthz`,
 * `/readyz` and `/metrics` live on the health server's own port
 * (`CTFLEET_HTTP_PORT`), so whatever exposes the API (a Service, an Ingress)
 * never exposes them; here they are 404 like any other unknown path.
 */
export async function startApiServer(host: string, port: number, router: Router, logger: Logger): Promise<Listening> {
  const app = express();
  app.disable('x-powered-by');
  app.use(router);
  const server = await listen(app, host, port);
  logger.info({ address: `${host}:${server.port}` }, `Serving the platform API and the dashboard on ${host}:${server.port}`);
  return server;
}
