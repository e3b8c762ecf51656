import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BullJobQueue } from '../../src/adapters/queue/bullmq-job-queue.ts';
import { BullWorkerPool } from '../../src/adapters/queue/bullmq-worker.ts';
import { createRedisConnection } from '../../src/adapters/redis/redis-connection.ts';
import { permanent, transient } from '../../src/domain/errors.ts';
import type { InstanceJob } from '../../src/domain/jobs.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { eventually, stackConfig, uniqueSuffix } from '../support/stack.ts';

// Retries against the stack's real Redis, through ctfleet's own queue adapters:
// transient failures retry with exponential backoff and jitter up to the
// configured attempts, then fail with the last reason; permanent ones fail at once.
const QUEUE = 'retries';
const ATTEMPTS = 4;
const BACKOFF_MS = 300;

function job(name: string): InstanceJob {
  return { v: 2, action: 'stop', target: { namespace: 'retries', name, uid: `0000000${String(name.length)}-0000-4000-8000-000000000000`, generation: 1 } };
}

describe('job retries (BullMQ on the stack\'s Redis)', () => {
  const config = stackConfig();
  const prefix = `{ctfleet-retries-${uniqueSuffix()}}`;
  const producer = createRedisConnection(config.redis, 'command');
  const blocking = createRedisConnection(config.redis, 'blocking');
  const queue = new BullJobQueue(producer, blocking, prefix, { attempts: ATTEMPTS, backoffMs: BACKOFF_MS });
  const pool = new BullWorkerPool(blocking, prefix, createLogger('test', 'silent'));
  const calls = new Map<string, number[]>();

  before(async () => {
    pool.consume(QUEUE, 4, (data) => {
      const { name } = (data as InstanceJob).target;
      const times = [...(calls.get(name) ?? []), Date.now()];
      calls.set(name, times);
      if (name === 'flaky' && times.length < 3) return Promise.reject(transient('DockerUnavailable', `attempt ${times.length}: engine away`));
      if (name === 'down') return Promise.reject(transient('DockerUnavailable', `attempt ${times.length}: engine away`));
      if (name === 'broken') return Promise.reject(permanent('ImageNotPresent', 'no such image'));
      return Promise.resolve({ outcome: 'stopped' });
    });
    await pool.waitUntilReady();
  });

  after(async () => {
    await pool.close(5_000);
    await queue.close();
    producer.disconnect();
    blocking.disconnect();
  });

  /** Waits until the job reaches `state`, and returns what the queue says of it. */
  const reaches = (jobId: string, state: 'completed' | 'failed', timeoutMs: number) =>
    eventually(`job ${jobId} to be ${state}`, timeoutMs, async () => {
      const inspected = await queue.inspect(QUEUE, jobId);
      return inspected.state === state ? inspected : undefined;
    });

  test('a transient failure that clears succeeds on a later attempt', async () => {
    const before = Date.now();
    await queue.enqueue(QUEUE, 'flaky-job', job('flaky'), 1);
    const result = await reaches('flaky-job', 'completed', 20_000);
    // When it entered the queue: the controller's safety net stretches with it.
    assert.ok(result.queuedAt !== undefined && result.queuedAt >= before - 1_000 && result.queuedAt <= Date.now(), `queuedAt ${String(result.queuedAt)}`);
    assert.equal(calls.get('flaky')?.length, 3);
    assert.equal(result.attempts, 3);
  });

  test('a failure that stays transient is retried with growing, jittered delays, then fails with the last reason', async () => {
    await queue.enqueue(QUEUE, 'down-job', job('down'), 1);
    const result = await reaches('down-job', 'failed', 30_000);
    const times = calls.get('down') ?? [];
    assert.equal(times.length, ATTEMPTS);
    assert.equal(result.attempts, ATTEMPTS);
    assert.equal(result.failedReason, `DockerUnavailable: attempt ${ATTEMPTS}: engine away`);
    // Delay k is drawn from [d/2, d] with d = BACKOFF_MS · 2^(k-1); allow for scheduling.
    const gaps = times.slice(1).map((at, i) => at - (times[i] ?? at));
    gaps.forEach((gap, i) => {
      const full = BACKOFF_MS * 2 ** i;
      assert.ok(gap >= full / 2 - 50 && gap <= full + 1_000, `retry ${i + 1} came after ${gap} ms; expected ${full / 2}–${full} ms`);
    });
    console.log(`# retry gaps (ms): ${gaps.join(', ')} for nominal ${gaps.map((_, i) => BACKOFF_MS * 2 ** i).join(', ')}`);
  });

  test('a permanent failure fails at once, without retries', async () => {
    await queue.enqueue(QUEUE, 'broken-job', job('broken'), 1);
    const result = await reaches('broken-job', 'failed', 10_000);
    assert.equal(calls.get('broken')?.length, 1);
    assert.equal(result.failedReason, 'ImageNotPresent: no such image');
  });
});
