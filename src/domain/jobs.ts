import { z } from 'zod';
import { DNS_LABEL } from './names.ts';
import { JOB_FAILED } from './reasons.ts';
import { specHash } from './spec-hash.ts';

/** What a job asks a worker to do with an instance's container. */
export type JobAction = 'start' | 'stop' | 'expire' | 'delete';

/** BullMQ's job states as the controller reads them. */
export type JobState = 'waiting' | 'delayed' | 'prioritized' | 'waiting-children' | 'active' | 'completed' | 'failed' | 'unknown';

/** Identifies the exact object a job was made for; a worker skips jobs for another uid or an older generation. */
export interface JobTarget {
  namespace: string;
  name: string;
  uid: string;
  generation: number;
}

/**
 * A job names its instance and nothing more: the worker reads the spec from the
 * API server, so whoever can write to Redis cannot choose what runs, and no env
 * value (a flag) sits in a queue or a dashboard.
 */
export interface InstanceJob {
  /** Payload format version, so a worker refuses payloads it does not understand. */
  v: 2;
  action: JobAction;
  target: JobTarget;
  /** Start jobs: {@link specHash} of the spec the controller saw; the worker runs only that spec. */
  specHash?: string;
}

/**
 * Deterministic job id: the same need never queues twice while its job exists.
 * BullMQ forbids `:` in custom ids and all-digit ids; uids are hex and dashes, and
 * the `.` separators keep the id from ever being all digits. The n-th
 * reschedule of a start gets the suffix `.r<n>`.
 */
export function jobIdFor(uid: string, generation: number, action: JobAction, reschedules = 0): string {
  if (action === 'delete') return `${uid}.delete`;
  const id = `${uid}.${generation}.${action}`;
  // Each move off a lost node is a new start job of the same generation.
  return action === 'start' && reschedules > 0 ? `${id}.r${reschedules}` : id;
}

/** The parts of a job id made by {@link jobIdFor}. */
export interface JobIdParts {
  uid: string;
  action: JobAction;
  /** Absent for delete jobs, which serve every generation. */
  generation?: number;
  reschedules: number;
}

/** Reads a job id made by {@link jobIdFor}; undefined for any other id. */
export function parseJobId(id: string): JobIdParts | undefined {
  const match = /^([0-9a-f-]+)\.(?:delete|(\d+)\.(start|stop|expire)(?:\.r(\d+))?)$/.exec(id);
  if (match === null) return undefined;
  const [, uid = '', generation, action, reschedules] = match;
  if (generation === undefined) return { uid, action: 'delete', reschedules: 0 };
  return { uid, action: action as JobAction, generation: Number(generation), reschedules: reschedules === undefined ? 0 : Number(reschedules) };
}

/** True for the first start job of an instance: generation 1, never rescheduled. */
export function isFirstStartJob(id: string, uid: string): boolean {
  const parts = parseJobId(id);
  return parts?.uid === uid && parts.action === 'start' && parts.generation === 1 && parts.reschedules === 0;
}

/**
 * A failed job's message as it crosses processes: its stable code first, so the
 * controller classifies it without `instanceof`. {@link decodeJobFailure} reads it back.
 */
export function encodeJobFailure(code: string, message: string): string {
  return `${code}: ${message}`;
}

/** The code of a failed job's message; {@link JOB_FAILED} when no code leads it. */
export function decodeJobFailure(failedReason: string | undefined): { code: string; message: string } {
  const match = failedReason === undefined ? null : /^([A-Z][A-Za-z]+): ([\s\S]*)$/.exec(failedReason);
  if (match === null) return { code: JOB_FAILED, message: failedReason ?? '' };
  return { code: match[1] ?? JOB_FAILED, message: match[2] ?? '' };
}

/** Queue for start jobs any worker may take. */
export const SHARED_QUEUE = 'start';

/** Queue of one node: stop and delete jobs, and start jobs for containers already placed there. */
export function nodeQueue(node: string): string {
  return `node.${node}`;
}

const dnsLabel = z.string().regex(DNS_LABEL).max(63);
const quantity = z.string().max(32);

const specSchema = z.object({
  team: dnsLabel,
  challenge: dnsLabel,
  image: z.string().min(1).max(512),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']),
  ports: z
    .array(z.object({ name: z.string().min(1).max(15), containerPort: z.number().int().min(1).max(65535), protocol: z.enum(['TCP', 'UDP']) }))
    .min(1)
    .max(16),
  env: z.array(z.object({ name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), value: z.string().optional() })).max(64).optional(),
  command: z.array(z.string()).max(64).optional(),
  args: z.array(z.string()).max(64).optional(),
  resources: z.object({ cpu: quantity.optional(), memory: quantity.optional(), pids: z.number().int().min(8).max(65536).optional() }).optional(),
  // Kept, not stripped, so the hash of a spec that has it is the API server's.
  security: z
    .object({
      capabilities: z.object({ add: z.array(z.string().max(32)).max(16).optional() }).optional(),
      readOnlyRootFilesystem: z.boolean().optional(),
      tmpfs: z.array(z.object({ path: z.string().max(256), size: quantity })).max(8).optional(),
      runtime: z.string().max(63).optional(),
    })
    .optional(),
  ttlSeconds: z.number().int().positive().optional(),
  desiredState: z.enum(['Running', 'Stopped']),
  priority: z.number().int().min(0).max(1000),
});

const targetSchema = z.object({ namespace: dnsLabel, name: z.string().min(1).max(253), uid: z.string().regex(/^[0-9a-f-]{8,64}$/), generation: z.number().int().min(1) });
const actionSchema = z.enum(['start', 'stop', 'expire', 'delete']);

const jobSchema = z
  .discriminatedUnion('v', [
    z.object({ v: z.literal(2), action: actionSchema, target: targetSchema, specHash: z.string().regex(/^[0-9a-f]{16}$/).optional() }),
    // Queued by a controller from before payloads lost their spec (a rolling upgrade).
    z.object({ v: z.literal(1), action: actionSchema, target: targetSchema, spec: specSchema.optional() }),
  ])
  .refine((job) => job.action !== 'start' || (job.v === 2 ? job.specHash !== undefined : job.spec !== undefined), { message: 'a start job needs a spec hash', path: ['specHash'] });

/**
 * Validates a job payload taken from the queue: the queue is never trusted.
 * Returns the job, or a one-line description of every problem with its field.
 * A version-1 payload's spec is reduced to its hash: it is never run.
 */
export function parseJob(data: unknown): { ok: true; job: InstanceJob } | { ok: false; problems: string } {
  const parsed = jobSchema.safeParse(data);
  if (!parsed.success) return { ok: false, problems: parsed.error.issues.map((issue) => `${issue.path.join('.') || '(payload)'}: ${issue.message}`).join('; ') };
  const { action, target } = parsed.data;
  const hash = parsed.data.v === 2 ? parsed.data.specHash : parsed.data.spec === undefined ? undefined : specHash(parsed.data.spec);
  return { ok: true, job: { v: 2, action, target, ...(hash === undefined ? {} : { specHash: hash }) } };
}
