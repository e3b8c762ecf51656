import { createHash } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import type { ChallengeInstance, InstanceSpec } from '../domain/challenge-instance.ts';
import { viewOf } from '../domain/instance-view.ts';
import { CtfleetError } from '../domain/errors.ts';
import { DNS_LABEL, LABELS } from '../domain/names.ts';
import type { TeamSlots } from '../domain/team-slots.ts';
import type { Logger } from '../observability/logger.ts';
import type { RateLimiter } from './rate-limit.ts';
import { createWithinCap } from './team-cap.ts';
import { authenticate, type ApiToken } from './tokens.ts';

/** What the API needs from Kubernetes (implemented by KubePlatformInstances). */
export interface PlatformStore {
  /** `spec` as a request gives it: the API server applies the CRD's defaults. */
  create(namespace: string, name: string, spec: { team: string; challenge: string } & Record<string, unknown>): Promise<{ created: boolean; instance: ChallengeInstance }>;
  get(namespace: string, name: string): Promise<ChallengeInstance | undefined>;
  list(namespace: string, labels: Record<string, string>): Promise<ChallengeInstance[]>;
  patchSpec(namespace: string, name: string, spec: Partial<InstanceSpec>): Promise<ChallengeInstance | undefined>;
  delete(namespace: string, name: string): Promise<boolean>;
}

export interface ApiSettings {
  namespace: string;
  maxInstancesPerTeam: number;
}

/** Every route, as the OpenAPI document names it: the test keeps both in step. */
export const ROUTES = [
  { method: 'get', path: '/v1/openapi.json' },
  { method: 'get', path: '/v1/instances' },
  { method: 'post', path: '/v1/instances' },
  { method: 'get', path: '/v1/instances/{team}/{challenge}' },
  { method: 'delete', path: '/v1/instances/{team}/{challenge}' },
  { method: 'post', path: '/v1/instances/{team}/{challenge}/extend' },
] as const;

const dnsLabel = z.string().regex(DNS_LABEL, 'must be a DNS label: lower-case letters, digits and -').max(63, 'must be at most 63 characters');
const ttl = z.number().int('must be a whole number of seconds').min(5, 'must be at least 5 seconds').max(2_592_000, 'must be at most 30 days');

const createSchema = z.strictObject({
  team: dnsLabel,
  challenge: dnsLabel,
  image: z.string().min(1, 'must name an image').max(512),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  ports: z
    .array(z.strictObject({ name: z.string().regex(DNS_LABEL, 'must be a DNS label').max(15), containerPort: z.number().int().min(1).max(65535), protocol: z.enum(['TCP', 'UDP']).optional() }))
    .min(1, 'must list at least one port')
    .max(16, 'must list at most 16 ports'),
  env: z.array(z.strictObject({ name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'), value: z.string().max(32_768) })).max(64).optional(),
  resources: z.strictObject({ cpu: z.string().max(32).optional(), memory: z.string().max(32).optional(), pids: z.number().int().min(8).max(65536).optional() }).optional(),
  ttlSeconds: ttl.optional(),
  priority: z.number().int().min(0).max(1000).optional(),
});

const extendSchema = z.strictObject({ ttlSeconds: ttl });
const listQuery = z.strictObject({ team: dnsLabel.optional(), challenge: dnsLabel.optional() });

/** An API failure with its HTTP status; rendered as `{ error: { code, message, field? } }`. */
class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(status: number, code: string, message: string, extra: { field?: string; retryAfterSeconds?: number } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = extra.field;
    this.retryAfterSeconds = extra.retryAfterSeconds;
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const unknown = issue?.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
  const path = [where, ...(issue?.path ?? []).map(String), ...(unknown === undefined ? [] : [unknown])].filter((part) => part !== '');
  const field = path.length === 0 ? 'body' : path.join('.');
  const rule = unknown === undefined ? (issue?.message ?? 'is invalid') : 'is not a field of this request';
  throw new HttpError(400, 'InvalidField', `${field}: ${rule}`, { field });
}

/** Deterministic name: one instance per team and challenge (idempotent create). */
export function instanceName(team: string, challenge: string): string {
  const name = `${challenge}-${team}`;
  if (name.length <= 63) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return `${challenge.slice(0, 27)}-${team.slice(0, 26)}-${hash}`;
}

/**
 * The platform API, version 1: bearer-token auth (constant-time), per-team rate
 * limit and instance cap (atomic across replicas through `slots`), JSON in and
 * out, every error as JSON with a code and (for bad input) the field; never a
 * stack trace.
 */
export function platformApi(deps: { store: PlatformStore; slots: TeamSlots; tokens: readonly ApiToken[]; limiter: RateLimiter; settings: ApiSettings; openapi: unknown; logger: Logger }): Router {
  const { store, slots, tokens, limiter, settings, logger } = deps;
  const router = express.Router();
  router.use(express.json({ limit: '64kb' }));

  router.get('/v1/openapi.json', (_request, response) => {
    response.json(deps.openapi);
  });

  router.use('/v1', (request: Request, response: Response, next: NextFunction) => {
    const token = authenticate(tokens, request.headers.authorization);
    if (token === undefined) throw new HttpError(401, 'Unauthorized', 'Send a valid API token as "Authorization: Bearer <token>".');
    if (request.method !== 'GET' && token.role !== 'admin') throw new HttpError(403, 'Forbidden', `Token ${token.name} may only read (role read).`);
    response.locals.tokenName = token.name;
    next();
  });

  const spend = (key: string, who: string): void => {
    const taken = limiter.take(key, Date.now());
    if (!taken.ok) throw new HttpError(429, 'RateLimited', `Too many requests for ${who}; retry in ${taken.retryAfterSeconds} s.`, { retryAfterSeconds: taken.retryAfterSeconds });
  };
  const limit = (team: string): void => {
    spend(team, `team ${team}`);
  };
  // A request that names no team (a listing of everything) spends from its
  // token's bucket, keyed so it is never a team's (teams are DNS labels, no ':').
  const limitToken = (response: Response): void => {
    const name = String(response.locals.tokenName);
    spend(`token:${name}`, `token ${name}`);
  };
  const pathParams = (request: Request): { team: string; challenge: string } => ({
    team: parse(dnsLabel, request.params.team, 'team'),
    challenge: parse(dnsLabel, request.params.challenge, 'challenge'),
  });

  router.get('/v1/instances', async (request, response) => {
    const query = parse(listQuery, request.query, 'query');
    if (query.team !== undefined) limit(query.team);
    else limitToken(response);
    const labels: Record<string, string> = {};
    if (query.team !== undefined) labels[LABELS.team] = query.team;
    if (query.challenge !== undefined) labels[LABELS.challenge] = query.challenge;
    const instances = await store.list(settings.namespace, labels);
    response.json({ items: instances.map(viewOf) });
  });

  router.post('/v1/instances', async (request, response) => {
    const body = parse(createSchema, request.body ?? {}, '');
    limit(body.team);
    const name = instanceName(body.team, body.challenge);
    const existing = await store.get(settings.namespace, name);
    if (existing !== undefined) {
      if (existing.metadata.deletionTimestamp !== undefined) throw new HttpError(409, 'Deleting', `The instance of ${body.challenge} for team ${body.team} is being deleted; try again when it is gone.`);
      response.status(200).json(viewOf(existing));
      return;
    }
    const admission = await createWithinCap(
      { slots, list: () => store.list(settings.namespace, { [LABELS.team]: body.team }), logger },
      { namespace: settings.namespace, team: body.team, name, limit: settings.maxInstancesPerTeam },
      () => store.create(settings.namespace, name, { ...body, desiredState: 'Running' }),
    );
    if (!admission.admitted) {
      throw new HttpError(429, 'TeamLimit', `Team ${body.team} already has ${admission.held} instances (limit ${settings.maxInstancesPerTeam}); delete one first.`, { retryAfterSeconds: 60 });
    }
    const { created, instance } = admission.value;
    logger.info({ instance: `${settings.namespace}/${name}`, uid: instance.metadata.uid, team: body.team, created }, `API created ChallengeInstance ${settings.namespace}/${name}`);
    response.status(created ? 201 : 200).location(`/v1/instances/${body.team}/${body.challenge}`).json(viewOf(instance));
  });

  router.get('/v1/instances/:team/:challenge', async (request, response) => {
    const { team, challenge } = pathParams(request);
    limit(team);
    const instance = await store.get(settings.namespace, instanceName(team, challenge));
    if (instance === undefined) throw new HttpError(404, 'NotFound', `Team ${team} has no instance of ${challenge}.`);
    response.json(viewOf(instance));
  });

  router.post('/v1/instances/:team/:challenge/extend', async (request, response) => {
    const { team, challenge } = pathParams(request);
    const { ttlSeconds } = parse(extendSchema, request.body ?? {}, '');
    limit(team);
    const instance = await store.patchSpec(settings.namespace, instanceName(team, challenge), { ttlSeconds });
    if (instance === undefined) throw new HttpError(404, 'NotFound', `Team ${team} has no instance of ${challenge}.`);
    response.json(viewOf(instance));
  });

  router.delete('/v1/instances/:team/:challenge', async (request, response) => {
    const { team, challenge } = pathParams(request);
    limit(team);
    const deleted = await store.delete(settings.namespace, instanceName(team, challenge));
    if (!deleted) throw new HttpError(404, 'NotFound', `Team ${team} has no instance of ${challenge}.`);
    response.status(202).json({ deleting: true });
  });

  router.use('/v1', (_request: Request, _response: Response, next: NextFunction) => {
    next(new HttpError(404, 'NotFound', 'No such route; see /v1/openapi.json.'));
  });

  // Errors as JSON; nothing internal (stack, object dumps) reaches the client.
  router.use((error: unknown, _request: Request, response: Response, next: NextFunction) => {
    if (response.headersSent) {
      next(error);
      return;
    }
    if (error instanceof HttpError) {
      if (error.retryAfterSeconds !== undefined) response.setHeader('Retry-After', String(error.retryAfterSeconds));
      response.status(error.status).json({ error: { code: error.code, message: error.message, ...(error.field === undefined ? {} : { field: error.field }) } });
      return;
    }
    const parseFailure = (error as { type?: string }).type;
    if (parseFailure === 'entity.parse.failed' || parseFailure === 'entity.too.large') {
      response.status(400).json({ error: { code: 'InvalidBody', message: parseFailure === 'entity.too.large' ? 'The body is larger than 64 KiB.' : 'The body is not valid JSON.' } });
      return;
    }
    if (error instanceof CtfleetError && error.retry === 'permanent') {
      response.status(400).json({ error: { code: error.code, message: error.message } });
      return;
    }
    if (error instanceof CtfleetError && error.retry === 'conflict') {
      response.status(409).json({ error: { code: error.code, message: error.message } });
      return;
    }
    logger.warn({ err: error }, 'API request failed');
    const away = error instanceof CtfleetError && error.code === 'RedisUnavailable' ? 'Redis' : 'The Kubernetes API';
    response.status(503).json({ error: { code: 'Unavailable', message: `${away} could not be reached; retry shortly.` } });
  });
  return router;
}
