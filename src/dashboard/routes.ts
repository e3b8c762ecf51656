import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { authenticateBrowser, type ApiToken } from '../api/tokens.ts';
import { describeError } from '../health/dependency-check.ts';
import type { Challenge } from '../domain/challenge.ts';
import { summariseChallenges } from '../domain/challenge-view.ts';
import type { InstanceView } from '../domain/instance-view.ts';
import { DNS_LABEL } from '../domain/names.ts';
import type { Logger } from '../observability/logger.ts';
import { renderChallengePage } from './challenge-page.ts';
import { FILTER_FIELDS, renderInstancePage, type InstanceFilter, type QueueCounts } from './instance-page.ts';

/** Where the dashboard is served; the queue board sits under `${DASHBOARD_PATH}/queues`. */
export const DASHBOARD_PATH = '/dashboard';
export const QUEUE_BOARD_PATH = `${DASHBOARD_PATH}/queues`;
export const CHALLENGES_PATH = `${DASHBOARD_PATH}/challenges`;
const REFRESH_SECONDS = 10;

export interface DashboardDeps {
  tokens: readonly ApiToken[];
  /** Every instance this deployment manages, as people read them. */
  instances: () => Promise<InstanceView[]>;
  /** Every Challenge of the namespaces this deployment watches. */
  challenges: () => Promise<Challenge[]>;
  queueCounts: () => Promise<QueueCounts[]>;
  /** The queue board (bull-board), full and read-only, both served from QUEUE_BOARD_PATH. */
  board: { full: Router; readOnly: Router };
  /** Read-only for everybody (else only for tokens with role `read`). */
  readOnly: boolean;
  logger: Logger;
}

/**
 * The only changes an admin may make from the dashboard, as `METHOD path` below
 * `/dashboard`: retry, clean and promote jobs, pause and resume queues. Adding or
 * editing a job would bypass the controller; emptying or obliterating a queue, or
 * changing its concurrency, would lose or starve what instances need. Everything
 * else that is not a read is refused, so a route variant bull-board (through
 * Express's case-insensitive, slash-tolerant routing) would still serve cannot
 * slip through.
 */
const ALLOWED_CHANGES = [
  /^PUT \/queues\/api\/queues\/[^/]+\/(retry|clean)\/[^/]+$/,
  /^PUT \/queues\/api\/queues\/[^/]+\/[^/]+\/(retry|clean|promote)$/,
  /^PUT \/queues\/api\/queues\/[^/]+\/(promote|pause|resume)$/,
  /^PUT \/queues\/api\/queues\/(pause|resume)$/,
];

/**
 * A request path as Express's default routing would match it: percent-decoded,
 * lower-case, repeated slashes collapsed and trailing ones dropped. Undefined
 * when it does not decode.
 */
export function normalisedPath(path: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return undefined;
  }
  return decoded.toLowerCase().replace(/\/{2,}/g, '/').replace(/(.)\/+$/, '$1');
}

/** True when an admin may send this change (see {@link ALLOWED_CHANGES}). */
export function isAllowedChange(method: string, path: string): boolean {
  const normalised = normalisedPath(path);
  return normalised !== undefined && ALLOWED_CHANGES.some((pattern) => pattern.test(`${method.toUpperCase()} ${normalised}`));
}

interface Viewer {
  name: string;
  readOnly: boolean;
}

function refuse(response: Response, status: number, code: string, message: string): void {
  response.status(status).json({ error: { code, message } });
}

/** Sends the page, with a policy that allows nothing but its inline style sheet. */
function sendPage(response: Response, html: string): void {
  response.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
  response.type('html').send(html);
}

/**
 * The dashboard: an instance view (`/dashboard/`), a challenges view
 * (`/dashboard/challenges/`) and bull-board over every queue
 * (`/dashboard/queues/`). Every path needs a token — HTTP Basic with the
 * token's name and the token, which browsers ask for, or a bearer token. Tokens
 * with role `read`, and everybody when `readOnly` is set, get the read-only
 * board and may not send anything but GET.
 */
export function dashboard(deps: DashboardDeps): Router {
  // Strict: `/dashboard` redirects to `/dashboard/`, which serves the page.
  const router = express.Router({ strict: true });
  const viewers = new WeakMap<Request, Viewer>();
  const viewerOf = (request: Request): Viewer => viewers.get(request) ?? { name: '?', readOnly: true };

  router.use(DASHBOARD_PATH, (request: Request, response: Response, next: NextFunction) => {
    response.setHeader('Cache-Control', 'no-store');
    response.setHeader('X-Frame-Options', 'DENY');
    const token = authenticateBrowser(deps.tokens, request.headers.authorization);
    if (token === undefined) {
      response.setHeader('WWW-Authenticate', 'Basic realm="ctfleet dashboard", charset="UTF-8"');
      refuse(response, 401, 'Unauthorized', 'Sign in with a token name as the user and the token as the password, or send "Authorization: Bearer <token>".');
      return;
    }
    const viewer = { name: token.name, readOnly: deps.readOnly || token.role !== 'admin' };
    viewers.set(request, viewer);
    const reading = request.method === 'GET' || request.method === 'HEAD';
    if (!reading && viewer.readOnly) {
      refuse(response, 403, 'ReadOnly', deps.readOnly ? 'The dashboard is read-only (CTFLEET_DASHBOARD_READ_ONLY=true).' : `Token ${token.name} may only read (role read).`);
      return;
    }
    if (!reading && !isAllowedChange(request.method, request.path)) {
      refuse(response, 403, 'NotAllowed', 'The dashboard may retry, clean and promote jobs and pause and resume queues, nothing else: jobs are made by the controller from ChallengeInstances, so change the resource instead.');
      return;
    }
    if (!reading) deps.logger.info({ user: token.name, method: request.method, path: `${DASHBOARD_PATH}${request.path}` }, `Dashboard: ${token.name} sent ${request.method} ${request.path}`);
    next();
  });

  router.get(DASHBOARD_PATH, (_request, response) => {
    response.redirect(`${DASHBOARD_PATH}/`);
  });

  router.get(`${DASHBOARD_PATH}/`, async (request: Request, response: Response) => {
    const filter: InstanceFilter = {};
    for (const field of FILTER_FIELDS) {
      const value = request.query[field];
      if (value === undefined || value === '') continue;
      if (typeof value !== 'string' || value.length > 63 || !DNS_LABEL.test(value)) {
        response.status(400).type('text/plain').send(`${field}: must be a DNS label (lower-case letters, digits and -)\n`);
        return;
      }
      filter[field] = value;
    }
    let instances: InstanceView[];
    try {
      instances = await deps.instances();
    } catch (error) {
      deps.logger.warn({ err: error }, 'Dashboard could not list ChallengeInstances');
      response.status(503).type('text/plain').send(`ChallengeInstances could not be listed: ${describeError(error)}\n`);
      return;
    }
    const queues = await deps.queueCounts().catch((error: unknown) => ({ error: describeError(error) }));
    sendPage(response, renderInstancePage({ instances, queues, viewer: viewerOf(request), filter, basePath: DASHBOARD_PATH, now: Date.now(), refreshSeconds: REFRESH_SECONDS }));
  });

  router.get(CHALLENGES_PATH, (_request, response) => {
    response.redirect(`${CHALLENGES_PATH}/`);
  });

  router.get(`${CHALLENGES_PATH}/`, async (request: Request, response: Response) => {
    let listed: [Challenge[], InstanceView[]];
    try {
      listed = await Promise.all([deps.challenges(), deps.instances()]);
    } catch (error) {
      deps.logger.warn({ err: error }, 'Dashboard could not list Challenges and their instances');
      response.status(503).type('text/plain').send(`Challenges and their instances could not be listed: ${describeError(error)}\n`);
      return;
    }
    const challenges = summariseChallenges(...listed);
    sendPage(response, renderChallengePage({ challenges, viewer: viewerOf(request), basePath: DASHBOARD_PATH, now: Date.now(), refreshSeconds: REFRESH_SECONDS }));
  });

  router.use(QUEUE_BOARD_PATH, (request: Request, response: Response, next: NextFunction) => {
    const board = viewerOf(request).readOnly ? deps.board.readOnly : deps.board.full;
    board(request, response, next);
  });

  return router;
}
