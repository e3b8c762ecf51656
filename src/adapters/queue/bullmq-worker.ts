import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { CtfleetError, retryClassOf } from '../../domain/errors.ts';
import { encodeJobFailure } from '../../domain/jobs.ts';
import type { JobContext, JobOutcome } from '../../domain/ports.ts';
import type { Logger } from '../../observability/logger.ts';
import { ProgressWriter } from './progress-writer.ts';

export type JobHandler = (data: unknown, context: JobContext) => Promise<JobOutcome>;

/** Told of every job handled: its action (the job's name), outcome (or `failed`) and duration. */
export type JobObserver = (action: string, outcome: string, seconds: number) => void;

/** The instance and uid a job is for, for its log lines (nothing when the data is not a job's). */
function jobIds(data: unknown): { instance?: string; uid?: string } {
  const target = (data as { target?: { namespace?: unknown; name?: unknown; uid?: unknown } } | undefined)?.target;
  if (typeof target?.namespace !== 'string' || typeof target.name !== 'string' || typeof target.uid !== 'string') return {};
  return { instance: `${target.namespace}/${target.name}`, uid: target.uid };
}

/**
 * Consumes BullMQ queues with one handler. A failure's message carries its stable
 * code ({@link encodeJobFailure}) so other processes can classify it without
 * `instanceof`; permanent failures are unrecoverable (no retry), everything else
 * retries with the job's backoff.
 */
export class BullWorkerPool {
  private readonly workers: Worker[] = [];
  private readonly connections: Redis[] = [];
  private readonly blocking: Redis;
  private readonly prefix: string;
  private readonly logger: Logger;
  /** Jobs in flight, with the lock token needed to hand them back. */
  private readonly active = new Map<string, { job: Job; token: string | undefined }>();

  private readonly observe: JobObserver;

  constructor(blocking: Redis, prefix: string, logger: Logger, observe: JobObserver = () => undefined) {
    this.blocking = blocking;
    this.prefix = prefix;
    this.logger = logger;
    this.observe = observe;
  }

  consume(queue: string, concurrency: number, handler: JobHandler): void {
    const connection = this.blocking.duplicate();
    const worker = new Worker(
      queue,
      async (job: Job, token?: string) => {
        const key = `${queue}/${job.id ?? ''}`;
        this.active.set(key, { job, token });
        // Progress is written behind the job's back (ProgressWriter): a start waits
        // for no Redis round trip per step, and steps replaced within 250 ms are
        // never written. The last one lands before the job ends.
        const steps = new ProgressWriter(
          ({ percent, step }) => job.updateProgress({ percent, step }),
          (error, { step }) => {
            this.logger.debug({ err: error, job: job.id, queue }, `Recording progress "${step}" failed`);
          },
        );
        const context: JobContext = {
          id: job.id ?? '',
          progress: (percent, step) => {
            steps.report({ percent, step });
          },
        };
        const began = performance.now();
        try {
          const outcome = await handler(job.data, context).finally(() => steps.flush());
          this.observe(job.name, outcome.outcome, (performance.now() - began) / 1000);
          return outcome;
        } catch (error) {
          this.observe(job.name, 'failed', (performance.now() - began) / 1000);
          throw asJobError(error);
        } finally {
          this.active.delete(key);
        }
      },
      // A job whose worker died (kill -9, node lost) goes back to the queue once its
      // lock expires: a 15 s lock (renewed every 7.5 s) checked every 5 s brings it
      // back within 20 s instead of BullMQ's default 60.
      { connection, prefix: this.prefix, concurrency, autorun: true, lockDuration: 15_000, stalledInterval: 5_000 },
    );
    worker.on('error', (error) => {
      this.logger.warn({ err: error, queue }, 'Queue connection failed; BullMQ retries');
    });
    worker.on('failed', (job, error) => {
      this.logger.warn({ job: job?.id, queue, attempts: job?.attemptsMade, ...jobIds(job?.data) }, `Job failed: ${error.message}`);
    });
    this.workers.push(worker);
    this.connections.push(connection);
  }

  /** Waits for BullMQ to connect every worker. */
  async waitUntilReady(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.waitUntilReady()));
  }

  /**
   * Stops taking jobs and waits up to `timeoutMs` for the ones in flight; jobs
   * still running then go back to their queue's wait list, where another worker
   * (or this one, restarted) takes them at once instead of after a stalled-lock
   * timeout. Jobs are idempotent, so one cut short and run again is safe.
   */
  async close(timeoutMs: number): Promise<{ handedBack: number }> {
    const closing = Promise.all(this.workers.map((worker) => worker.close()));
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      closing.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => {
          resolve(false);
        }, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    let handedBack = 0;
    if (!finished) {
      for (const [key, { job, token }] of this.active) {
        try {
          await job.moveToWait(token);
          handedBack += 1;
          this.logger.info({ job: job.id, queue: job.queueName, ...jobIds(job.data) }, `Handed job ${key} back to its queue`);
        } catch (error) {
          this.logger.warn({ err: error, job: job.id, ...jobIds(job.data) }, 'Handing a job back failed; it returns to the queue when its lock expires');
        }
      }
      // BullMQ's close(true) would return the pending close and wait for the
      // processors; the jobs are back in their queues, so the process just
      // lets go of them (their late results are refused for want of the lock).
    }
    for (const connection of this.connections) connection.disconnect();
    return { handedBack };
  }
}

function asJobError(error: unknown): Error {
  const code = error instanceof CtfleetError ? error.code : 'WorkerError';
  const message = encodeJobFailure(code, error instanceof Error ? error.message : String(error));
  if (retryClassOf(error) === 'permanent') return new UnrecoverableError(message);
  return new Error(message, { cause: error });
}
