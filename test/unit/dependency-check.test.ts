import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkDependencies, describeError } from '../../src/health/dependency-check.ts';

describe('checkDependencies', () => {
  test('a check that throws or hangs becomes an unhealthy status; the others still report', async () => {
    const statuses = await checkDependencies(
      {
        fine: async () => ({ name: 'fine', healthy: true, detail: 'v1' }),
        broken: async () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })),
        silent: () => new Promise(() => undefined),
      },
      50,
    );
    assert.deepEqual(statuses, [
      { name: 'fine', healthy: true, detail: 'v1' },
      { name: 'broken', healthy: false, detail: 'connect ECONNREFUSED 127.0.0.1:1' },
      { name: 'silent', healthy: false, detail: 'no answer within 50 ms' },
    ]);
  });
});

describe('describeError', () => {
  test('adds the code when the message does not already carry it', () => {
    assert.equal(describeError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })), 'socket hang up (ECONNRESET)');
    assert.equal(describeError('plain'), 'plain');
    assert.equal(describeError(new Error('first line\nsecond line')), 'first line');
  });
});
