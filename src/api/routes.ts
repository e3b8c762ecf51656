import { createHash } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import type { ChallengeInstance, InstanceSpec } from '../domain/challenge-instance.ts';
import { CHALLENGE_OWNED_FIELDS, type Challenge } from '../domain/challenge.ts';
import { viewOf } from '../domain/instance-view.ts';
import { CtfleetError, retryClassOf } from '../domain/errors.ts';
import { DNS_LABEL, LABELS } from '../domain/names.ts';
import type { TeamSlots } from '../domain/team-slots.ts';
import type { Logger } from '../observability/logger.ts';
import { platformChallengeViews } from './platform-challenges.ts';
import { checkFlag, type FlagCheck, type FlagReader } from './flag-check.ts';
import type { RateLimiter } from './rate-limit.ts';
import { createWithinCap } from './team-cap.ts';
import { authenticate, type ApiToken } from './tokens.ts';

/**
 * What a platform may ask for: an instance of a Challenge for a team. The image,
 * ports, env and limits are the Challenge's, chosen by its organisers.
 */
export interface InstanceRequest {
  team: string;
  challenge: string;
  ttlSeconds?: number;
  priority?: number;
}

/** What the API needs from Kubernetes (implemented by KubePlatformInstances). */
export interface PlatformStore {
  /** Creates `spec.challengeRef` naming `request.challenge`; the API server applies the CRD's defaults. */
  create(namespace: string, name: string, request: InstanceRequest): Promise<{ created: boolean; instance: ChallengeInstance }>;
  get(namespace: string, name: string): Promise<ChallengeInstance | undefined>;
  list(namespace: string, labels: Record<string, string>): Promise<ChallengeInstance[]>;
  patchSpec(namespace: string, name: string, spec: Partial<InstanceSpec>): Promise<ChallengeInstance | undefined>;
  delete(namespace: string, name: string): Promise<boolean>;
}

/** The Challenges the API reads (implemented by KubeChallengeSource): from the API server, never a cache. */
export interface ChallengeCatalog {
  get(namespace: string, name: string): Promise<Challenge | undefined>;
  /** Every Challenge of these namespaces. */
  list(namespaces: readonly string[]): Promise<Challenge[]>;
}

export interface ApiSettings {
  namespace: string;
  maxInstancesPerTeam: number;
}

/** Every route, as the OpenAPI document names it: the test keeps both in step. */
export const ROUTES = [
  { method: 'get', path: '/v1/openapi.json' },
  { method: 'get', path: '/v1/challenges' },
  { method: 'get', path: '/v1/instances' },
  { method: 'post', path: '/v1/instances' },
  { method: 'get', path: '/v1/instances/{team}/{challenge}' },
  { method: 'delete', path: '/v1/instances/{team}/{challenge}' },
  { method: 'post', path: '/v1/instances/{team}/{challenge}/extend' },
  { method: 'post', path: '/v1/flags/verify' },
] as const;

const dnsLabel = z.string().regex(DNS_LABEL, 'must be a DNS label: lower-case letters, digits and -').max(63, 'must be at most 63 characters');
const ttl = z.number().int('must be a whole number of seconds').min(5, 'must be at least 5 seconds').max(2_592_000, 'must be at most 30 days');

/** The longest flag a check accepts: a flag Secret's value is at most 4 KiB, and a format is a line. */
export const MAX_FLAG_LENGTH = 4096;

export const createSchema = z.strictObject({
  team: dnsLabel,
  challenge: dnsLabel,
  ttlSeconds: ttl.optional(),
  priority: z.number().int('must be a whole number').min(0, 'must be at least 0').max(1000, 'must be at most 1000').optional(),
});

/**
 * Fields of the direct form (an instance that names its own image) that a create
 * used to take: refused with a message that says why, not as an unknown field.
 */
export const ORGANISER_FIELDS: readonly string[] = [...CHALLENGE_OWNED_FIELDS.filter((field) => field !== 'challenge'), 'flag'];

export const verifySchema = z.strictObject({
  team: dnsLabel,
  challenge: dnsLabel,
  // Rules only: no message here may quote the value (zod's own messages do not).
  flag: z.string('must be a string').min(1, 'must not be empty').max(MAX_FLAG_LENGTH, `must be at most ${MAX_FLAG_LENGTH} characters`),
});

const extendSchema = z.strictObject({ ttlSeconds: ttl });
const listQuery = z.strictObject({ team: dnsLabel.optional(), challenge: dnsLabel.optional() });
const noQuery = z.strictObject({});

/** An API failure with its HTTP status; rendered as `{ error: { code, message, field? } }`. */
export class HttpError extends Error {
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

/** Parses a body or query, or throws 400 InvalidField naming the first field that breaks a rule and the rule. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const unknown = issue?.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
  const path = [where, ...(issue?.path ?? []).map(String), ...(unknown === undefined ? [] : [unknown])].filter((part) => part !== '');
  const field = path.length === 0 ? 'body' : path.join('.');
  const rule = unknown === undefined ? (issue?.message ?? 'is invalid') : 'is not a field of this request';
  throw new HttpError(400, 'InvalidField', `${field}: ${rule}`, { field });
}

/**
 * Parses a create request: `{team, challenge}` and optionally `ttlSeconds` and
 * `priority`. A body in the direct form (`image`, `ports`, `env`, …) is refused
 * naming the first such field: the platform names a challenge, organisers choose
 * what it runs.
 */
export function parseCreate(body: unknown): z.infer<typeof createSchema> {
  if (typeof body === 'object' && body !== null) {
    const field = ORGANISER_FIELDS.find((name) => Object.hasOwn(body, name));
    if (field !== undefined) {
      throw new HttpError(400, 'InvalidField', `${field}: is not a field of this request: the platform names a challenge, and its Challenge (chosen by the organisers) sets the image, ports, env, limits and flag`, { field });
    }
  }
  return parse(createSchema, body, '');
}

/** Deterministic name: one instance per team and challenge (idempotent create). */
export function instanceName(team: string, challenge: string): string {
  const name = `${challenge}-${team}`;
  if (name.length <= 63) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return `${challenge.slice(0, 27)}-${team.slice(0, 26)}-${hash}`;
}

/** The codes of flag-store failures a person must fix (a Secret, a setting, RBAC): the API says so without the details. */
const FLAG_READ_FAILURES = new Set(['FlagKeyInvalid', 'FlagSecretInvalid', 'Forbidden', 'InvalidSpec']);

export interface PlatformApiDeps {
  store: PlatformStore;
  challenges: ChallengeCatalog;
  flags: FlagReader;
  slots: TeamSlots;
  tokens: readonly ApiToken[];
  /** Every request that names a team spends from that team's bucket; a listing of everything from its token's. */
  limiter: RateLimiter;
  /** Flag checks only, one bucket per team, apart from `limiter`. */
  verifyLimiter: RateLimiter;
  settings: ApiSettings;
  openapi: unknown;
  logger: Logger;
}

/**
 * The platform API, version 1: bearer-token auth (constant-time), per-team rate
 * limit and instance cap (atomic across replicas through `slots`), JSON in and
 * out, every error as JSON with a code and (for bad input) the field; never a
 * stack trace. Instances are made only from Challenges of the API namespace;
 * flags are checked for admin tokens only, and only `{correct}` is answered.
 */
export function platformApi(deps: PlatformApiDeps): Router {
  const { store, challenges, flags, slots, tokens, limiter, verifyLimiter, settings, logger } = deps;
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
    response.locals.tokenRole = token.role;
    next();
  });

  const spend = (key: string, who: string, from: RateLimiter = limiter, what = 'requests'): void => {
    const taken = from.take(key, Date.now());
    if (!taken.ok) throw new HttpError(429, 'RateLimited', `Too many ${what} for ${who}; retry in ${taken.retryAfterSeconds} s.`, { retryAfterSeconds: taken.retryAfterSeconds });
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
  /** The Challenge a request names, or 404 ChallengeNotFound. */
  const challengeNamed = async (name: string): Promise<Challenge> => {
    const challenge = await challenges.get(settings.namespace, name);
    if (challenge === undefined) throw new HttpError(404, 'ChallengeNotFound', `Challenge ${name} does not exist in namespace ${settings.namespace}.`);
    return challenge;
  };
  const pathParams = (request: Request): { team: string; challenge: string } => ({
    team: parse(dnsLabel, request.params.team, 'team'),
    challenge: parse(dnsLabel, request.params.challenge, 'challenge'),
  });

  router.get('/v1/challenges', async (request, response) => {
    parse(noQuery, request.query, 'query');
    limitToken(response);
    const [declared, instances] = await Promise.all([challenges.list([settings.namespace]), store.list(settings.namespace, {})]);
    response.json({ items: platformChallengeViews(declared, instances) });
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
    const body = parseCreate(request.body ?? {});
    limit(body.team);
    const challenge = await challengeNamed(body.challenge);
    if (challenge.metadata.deletionTimestamp !== undefined) throw new HttpError(409, 'ChallengeDeleting', `Challenge ${body.challenge} is being deleted; it starts no new instances.`);
    const maxSeconds = challenge.spec.lifetime?.maxSeconds;
    if (body.ttlSeconds !== undefined && maxSeconds !== undefined && body.ttlSeconds > maxSeconds) {
      throw new HttpError(400, 'InvalidField', `ttlSeconds: must be at most ${maxSeconds}, the lifetime.maxSeconds of Challenge ${body.challenge}`, { field: 'ttlSeconds' });
    }
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
      () => store.create(settings.namespace, name, body),
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
    const name = instanceName(team, challenge);
    const existing = await store.get(settings.namespace, name);
    if (existing === undefined) throw new HttpError(404, 'NotFound', `Team ${team} has no instance of ${challenge}.`);
    // Above its Challenge's maximum the instance would fail InvalidSpec: refuse here instead.
    const ref = existing.spec.challengeRef?.name;
    const maxSeconds = ref === undefined ? undefined : (await challenges.get(settings.namespace, ref))?.spec.lifetime?.maxSeconds;
    if (maxSeconds !== undefined && ttlSeconds > maxSeconds) {
      throw new HttpError(400, 'InvalidField', `ttlSeconds: must be at most ${maxSeconds}, the lifetime.maxSeconds of Challenge ${ref ?? challenge}`, { field: 'ttlSeconds' });
    }
    const instance = await store.patchSpec(settings.namespace, name, { ttlSeconds });
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

  router.post('/v1/flags/verify', async (request, response) => {
    // The route-wide check refuses read tokens already (a POST); this keeps it so if verify ever becomes a GET.
    if (response.locals.tokenRole !== 'admin') throw new HttpError(403, 'Forbidden', `Token ${String(response.locals.tokenName)} may not check flags (role read).`);
    const body = parse(verifySchema, request.body ?? {}, '');
    spend(body.team, `team ${body.team}`, verifyLimiter, 'flag checks');
    const challenge = await challengeNamed(body.challenge);
    const where = `${settings.namespace}/${body.challenge}`;
    let check: FlagCheck;
    try {
      check = await checkFlag(flags, { challenge, team: body.team, given: body.flag, instance: () => store.get(settings.namespace, instanceName(body.team, body.challenge)) });
    } catch (error) {
      const code = error instanceof CtfleetError ? error.code : undefined;
      if (code === undefined || retryClassOf(error) === 'transient' || !FLAG_READ_FAILURES.has(code)) throw error;
      // The store's messages name Secrets and keys, never values; still, the platform gets only the code.
      logger.warn({ err: error, team: body.team, challenge: where }, `Checking a flag of Challenge ${where} failed: its expected flag could not be read`);
      throw new HttpError(503, 'FlagUnavailable', `The flag of Challenge ${body.challenge} could not be read (${code}); the API's log says why.`);
    }
    if (check.kind === 'noFlag') throw new HttpError(404, 'NoFlag', `Challenge ${body.challenge} has no flag.`);
    logger.info({ team: body.team, challenge: where, correct: check.correct }, `Checked a flag of team ${body.team} for Challenge ${where}: ${check.correct ? 'correct' : 'incorrect'}`);
    response.json({ correct: check.correct });
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
