import assert from 'node:assert/strict';
import { test } from 'node:test';
import { placeOf, summariseProfile, type CpuProfile } from '../../bench/lib/cpu-profile.ts';

// A worker's call tree: reconcile (ctfleet) → send (ctfleet) → request (undici) → JSON.parse (native);
// beside it the garbage collector and idle time.
const frame = (functionName: string, url: string, lineNumber = 0) => ({ functionName, url, lineNumber });
const PROFILE: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)', ''), children: [2, 6, 7] },
    { id: 2, callFrame: frame('reconcile', 'file:///app/dist/worker/node-reconciler.js', 330), children: [3] },
    { id: 3, callFrame: frame('send', 'file:///app/dist/adapters/kubernetes/api-client.js', 80), children: [4] },
    { id: 4, callFrame: frame('request', 'file:///app/node_modules/undici/lib/api/api-request.js', 9), children: [5] },
    { id: 5, callFrame: frame('parse', '') },
    { id: 6, callFrame: frame('(garbage collector)', '') },
    { id: 7, callFrame: frame('(idle)', '') },
  ],
  // One sample each 1 ms: reconcile, send, request, parse, GC, idle, request, parse.
  samples: [2, 3, 4, 5, 6, 7, 4, 5],
  timeDeltas: [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
  startTime: 0,
  endTime: 8000,
};

test('a CPU profile sums self time by place and function, leaves idle out, and counts callees under ctfleet\'s functions', () => {
  const summary = summariseProfile(PROFILE);
  assert.equal(summary.busyUs, 7000);
  assert.deepEqual(Object.fromEntries(summary.byPlace), { 'ctfleet worker': 1000, 'ctfleet adapters': 1000, undici: 2000, '(native)': 2000, '(garbage collector)': 1000 });
  assert.equal(summary.byFunction.get('request node_modules/undici/lib/api/api-request.js:10'), 2000);
  // Everything below reconcile: itself, send, request twice, parse twice.
  assert.equal(summary.underOwn.get('reconcile dist/worker/node-reconciler.js:331'), 6000);
  assert.equal(summary.underOwn.get('send dist/adapters/kubernetes/api-client.js:81'), 5000);
  assert.equal(summary.underOwn.has('request node_modules/undici/lib/api/api-request.js:10'), false);
});

test('a window keeps only the samples taken within it', () => {
  // Samples end at 1, 2, … 8 ms: from 3 ms up to 6 ms keeps the 3rd to 5th (request, parse, GC).
  const summary = summariseProfile(PROFILE, { fromUs: 3000, toUs: 6000 });
  assert.equal(summary.busyUs, 3000);
  assert.deepEqual(Object.fromEntries(summary.byPlace), { undici: 1000, '(native)': 1000, '(garbage collector)': 1000 });
  assert.equal(summary.underOwn.get('reconcile dist/worker/node-reconciler.js:331'), 2000);
});

test('code is placed by where it lives', () => {
  assert.equal(placeOf(frame('x', 'file:///app/node_modules/@kubernetes/client-node/dist/gen/x.js')), '@kubernetes/client-node');
  assert.equal(placeOf(frame('x', 'node:internal/streams/readable')), 'node');
  assert.equal(placeOf(frame('x', 'file:///app/src/domain/spec-hash.ts')), 'ctfleet domain');
  assert.equal(placeOf(frame('(program)', '')), '(program)');
});
