import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ContainerInfo } from '../../src/domain/ports.ts';
import { NodeListing } from '../../src/worker/node-listing.ts';

/** A runtime whose listings answer when the test says, each with the containers of the moment. */
function fakeRuntime() {
  const pending: { resolve: (containers: ContainerInfo[]) => void; reject: (error: Error) => void }[] = [];
  return {
    calls: () => pending.length,
    listManaged: () => new Promise<ContainerInfo[]>((resolve, reject) => pending.push({ resolve, reject })),
    answer: (i: number, names: string[]) => {
      pending[i]?.resolve(names.map((name) => ({ id: name, name, running: true, exitCode: undefined, labels: {}, hostPorts: [], createdAt: 0 })));
    },
    fail: (i: number) => {
      pending[i]?.reject(new Error('engine gone'));
    },
  };
}

const names = (containers: ContainerInfo[]): string[] => containers.map((container) => container.name);

/** A listing over a fake runtime, at a clock the test moves (`clock.ms`). */
function fixture(startMs = 5_000) {
  const clock = { ms: startMs, now: () => clock.ms };
  const runtime = fakeRuntime();
  return { clock, runtime, listing: new NodeListing(runtime, clock) };
}

test('callers within the age share one listing, under way or answered; an older one lists again', async () => {
  const { clock, runtime, listing } = fixture(1_000);
  const sweep = listing.fresh();
  clock.ms += 10;
  const ports = listing.within(30_000);
  assert.equal(runtime.calls(), 1, 'the port allocation joins the sweep\'s listing under way');
  clock.ms += 40;
  runtime.answer(0, ['a', 'b']);
  assert.deepEqual(names(await sweep), ['a', 'b']);
  assert.deepEqual(names(await ports), ['a', 'b']);
  assert.equal(listing.lastTookMs(), 50);
  clock.ms += 29_950;
  assert.deepEqual(names(await listing.within(30_000)), ['a', 'b'], '30 s after it began: still served');
  assert.equal(runtime.calls(), 1);
  clock.ms += 1;
  const later = listing.within(30_000);
  assert.equal(runtime.calls(), 2, 'older than 30 s: a new listing');
  runtime.answer(1, ['a']);
  assert.deepEqual(names(await later), ['a']);
});

test('the sweep always lists afresh, and what it lists serves the next callers', async () => {
  const { runtime, listing } = fixture();
  const first = listing.within(30_000);
  runtime.answer(0, ['a']);
  await first;
  const sweep = listing.fresh();
  assert.equal(runtime.calls(), 2, 'a sweep does not take a listing it did not make');
  runtime.answer(1, ['a', 'c']);
  await sweep;
  assert.deepEqual(names(await listing.within(30_000)), ['a', 'c']);
  assert.equal(runtime.calls(), 2);
});

test('a failed listing reaches everyone waiting on it and is not kept', async () => {
  const { runtime, listing } = fixture();
  const sweep = listing.fresh();
  const beat = listing.within(30_000);
  runtime.fail(0);
  await assert.rejects(sweep, /engine gone/);
  await assert.rejects(beat, /engine gone/, 'the heartbeat fails with it: an engine gone shows in liveness');
  const retry = listing.within(30_000);
  assert.equal(runtime.calls(), 2, 'the next caller lists again');
  runtime.answer(1, ['a']);
  assert.deepEqual(names(await retry), ['a']);
});

test('after invalidate the next caller lists afresh, even within the age', async () => {
  const { runtime, listing } = fixture();
  const first = listing.within(30_000);
  runtime.answer(0, ['gone']);
  await first;
  listing.invalidate();
  const next = listing.within(30_000);
  assert.equal(runtime.calls(), 2);
  runtime.answer(1, []);
  assert.deepEqual(names(await next), []);
});

test('an age of 0 lists at every call (a cheap engine: the heartbeat counts afresh each beat)', async () => {
  const { clock, runtime, listing } = fixture();
  const first = listing.within(0);
  runtime.answer(0, ['a']);
  await first;
  clock.ms += 1;
  void listing.within(0);
  assert.equal(runtime.calls(), 2);
});
