import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MIN_REQUEUE_MS, WorkQueue, type WorkResult } from '../../src/reconcile/work-queue.ts';

const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function recorder(result: (key: string, pass: number) => WorkResult | Error, holdMs = 0) {
  const passes: string[] = [];
  let running = 0;
  let maxRunningPerKey = 0;
  const perKey = new Map<string, number>();
  const process = async (key: string): Promise<WorkResult> => {
    passes.push(key);
    running += 1;
    perKey.set(key, (perKey.get(key) ?? 0) + 1);
    maxRunningPerKey = Math.max(maxRunningPerKey, perKey.get(key) ?? 0);
    await tick(holdMs);
    perKey.set(key, (perKey.get(key) ?? 1) - 1);
    running -= 1;
    const outcome = result(key, passes.filter((k) => k === key).length);
    if (outcome instanceof Error) throw outcome;
    return outcome;
  };
  return { passes, process, maxRunningPerKey: () => maxRunningPerKey, running: () => running };
}

describe('WorkQueue', () => {
  test('a key added many times while waiting is processed once', async () => {
    const queue = new WorkQueue({ concurrency: 1, baseBackoffMs: 5, maxBackoffMs: 50 });
    const r = recorder(() => ({ requeueAfterMs: null }));
    for (let i = 0; i < 5; i += 1) queue.add('ns/a');
    queue.add('ns/b');
    queue.start(r.process, () => undefined);
    await tick(30);
    assert.deepEqual(r.passes, ['ns/a', 'ns/b']);
    await queue.close();
  });

  test('a key is never processed twice at once; an add during its pass runs it again after', async () => {
    const queue = new WorkQueue({ concurrency: 4, baseBackoffMs: 5, maxBackoffMs: 50 });
    const r = recorder(() => ({ requeueAfterMs: null }), 20);
    queue.start(r.process, () => undefined);
    queue.add('ns/a');
    await tick(5);
    queue.add('ns/a');
    queue.add('ns/a');
    await tick(80);
    assert.deepEqual(r.passes, ['ns/a', 'ns/a']);
    assert.equal(r.maxRunningPerKey(), 1);
    await queue.close();
  });

  test('a key whose object is gone (requeue null) is not processed again', async () => {
    const queue = new WorkQueue({ concurrency: 1, baseBackoffMs: 5, maxBackoffMs: 50 });
    const r = recorder(() => ({ requeueAfterMs: null }));
    queue.start(r.process, () => undefined);
    queue.add('ns/gone');
    await tick(50);
    assert.deepEqual(r.passes, ['ns/gone']);
    await queue.close();
  });

  test('a pass asking to run again at once still lets timers and I/O run', async () => {
    const queue = new WorkQueue({ concurrency: 1, baseBackoffMs: 5, maxBackoffMs: 50 });
    const r = recorder(() => ({ requeueAfterMs: 0 }));
    queue.start(r.process, () => undefined);
    queue.add('ns/eager');
    const started = Date.now();
    await tick(50);
    assert.ok(Date.now() - started < 200, 'the timer fired on time: the loop was not starved');
    // On a loaded machine the second pass may come late; it comes, and never sooner than MIN_REQUEUE_MS after the one before.
    while (r.passes.length < 2 && Date.now() - started < 2_000) await tick(10);
    const elapsed = Date.now() - started;
    assert.ok(r.passes.length >= 2, `it ran again: ${String(r.passes.length)} passes in ${String(elapsed)} ms`);
    assert.ok(r.passes.length <= elapsed / MIN_REQUEUE_MS + 1, `passes were spaced out: ${String(r.passes.length)} in ${String(elapsed)} ms`);
    await queue.close();
  });

  test('failures back off exponentially per key', async () => {
    const queue = new WorkQueue({ concurrency: 1, baseBackoffMs: 10, maxBackoffMs: 1_000 });
    const times: number[] = [];
    const errors: string[] = [];
    queue.start(
      async () => {
        times.push(Date.now());
        if (times.length <= 3) throw new Error(`boom ${times.length}`);
        return { requeueAfterMs: null };
      },
      (key, error) => errors.push(`${key}: ${(error as Error).message}`),
    );
    queue.add('ns/flaky');
    await tick(150);
    assert.equal(times.length, 4);
    assert.deepEqual(errors, ['ns/flaky: boom 1', 'ns/flaky: boom 2', 'ns/flaky: boom 3']);
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? t));
    assert.ok((gaps[1] ?? 0) >= 15 && (gaps[2] ?? 0) >= 35, `gaps grow: ${gaps.join(',')}`);
    await queue.close();
  });

  test('close waits for the pass in flight and then takes no more keys', async () => {
    const queue = new WorkQueue({ concurrency: 1, baseBackoffMs: 5, maxBackoffMs: 50 });
    const r = recorder(() => ({ requeueAfterMs: 1 }), 30);
    queue.start(r.process, () => undefined);
    queue.add('ns/a');
    await tick(5);
    await queue.close();
    assert.equal(r.running(), 0);
    const count = r.passes.length;
    queue.add('ns/a');
    await tick(20);
    assert.equal(r.passes.length, count);
  });
});
