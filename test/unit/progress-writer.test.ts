import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { ProgressWriter, type JobStep } from '../../src/adapters/queue/progress-writer.ts';

function writer(fail: (step: JobStep) => boolean = () => false) {
  const written: string[] = [];
  const refused: string[] = [];
  const progress = new ProgressWriter(
    async (step) => {
      await Promise.resolve();
      if (fail(step)) throw new Error('lock lost');
      written.push(`${step.percent} ${step.step}`);
    },
    (_error, step) => refused.push(step.step),
    250,
  );
  return { progress, written, refused };
}

/** Lets the writes started so far settle (each is a short chain of promises). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i += 1) await Promise.resolve();
}

describe('ProgressWriter', () => {
  test('steps replaced within the interval are never written; the last one is, at flush, without waiting out the interval', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const { progress, written } = writer();
      progress.report({ percent: 20, step: 'pulling image' });
      progress.report({ percent: 40, step: 'creating container' });
      assert.deepEqual(written, [], 'nothing is written before the interval ends');
      mock.timers.tick(250);
      await settle();
      assert.deepEqual(written, ['40 creating container']);
      progress.report({ percent: 60, step: 'started' });
      progress.report({ percent: 70, step: 'waiting for readiness' });
      progress.report({ percent: 100, step: 'ready' });
      await progress.flush();
      assert.deepEqual(written, ['40 creating container', '100 ready']);
      await progress.flush();
      assert.deepEqual(written, ['40 creating container', '100 ready'], 'a step already written is not written again');
    } finally {
      mock.timers.reset();
    }
  });

  test('a long step is written when its interval ends, then each later one in order', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const { progress, written } = writer();
      progress.report({ percent: 20, step: 'pulling image' });
      mock.timers.tick(250);
      await settle();
      assert.deepEqual(written, ['20 pulling image'], 'a step that lasts the interval reaches Redis before the job ends');
      progress.report({ percent: 40, step: 'creating container' });
      mock.timers.tick(249);
      await settle();
      assert.deepEqual(written, ['20 pulling image']);
      mock.timers.tick(1);
      await progress.flush();
      assert.deepEqual(written, ['20 pulling image', '40 creating container']);
    } finally {
      mock.timers.reset();
    }
  });

  test('a refused write is reported and does not stop later ones', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const { progress, written, refused } = writer((step) => step.step === 'creating container');
      progress.report({ percent: 40, step: 'creating container' });
      mock.timers.tick(250);
      await settle();
      progress.report({ percent: 100, step: 'ready' });
      await progress.flush();
      assert.deepEqual(refused, ['creating container']);
      assert.deepEqual(written, ['100 ready']);
    } finally {
      mock.timers.reset();
    }
  });

  test('nothing reported after flush is written: the job is over', async () => {
    const { progress, written } = writer();
    progress.report({ percent: 100, step: 'ready' });
    await progress.flush();
    progress.report({ percent: 70, step: 'waiting for readiness' });
    await progress.flush();
    assert.deepEqual(written, ['100 ready']);
  });
});
