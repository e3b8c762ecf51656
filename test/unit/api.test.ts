import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RateLimiter } from '../../src/api/rate-limit.ts';
import { instanceName } from '../../src/api/routes.ts';
import { authenticate, parseTokens } from '../../src/api/tokens.ts';

describe('API tokens', () => {
  const tokens = parseTokens('# comment\n\nplatform:admin:0123456789abcdef-admin\nboard:read:0123456789abcdef-read\n', 'tokens.txt');

  test('parses name:role:token lines and finds the presented token', () => {
    assert.deepEqual(tokens.map((token) => [token.name, token.role]), [['platform', 'admin'], ['board', 'read']]);
    assert.equal(authenticate(tokens, 'Bearer 0123456789abcdef-read')?.name, 'board');
    assert.equal(authenticate(tokens, 'bearer 0123456789abcdef-admin')?.name, 'platform');
  });

  test('refuses missing, malformed and unknown credentials', () => {
    for (const header of [undefined, '', 'Basic abc', 'Bearer', 'Bearer 0123456789abcdef-admi', 'Bearer 0123456789abcdef-adminX']) {
      assert.equal(authenticate(tokens, header), undefined, String(header));
    }
  });

  test('bad lines are refused naming the line and the rule', () => {
    assert.throws(() => parseTokens('ok:admin:0123456789abcdef\nBad Name:admin:0123456789abcdef', 'f'), /^Error: f line 2: the name must be a DNS label/);
    assert.throws(() => parseTokens('a:owner:0123456789abcdef', 'f'), /f line 1: the role must be admin or read/);
    assert.throws(() => parseTokens('a:read:short', 'f'), /f line 1: the token must be at least 16 characters/);
    assert.throws(() => parseTokens('# nothing\n', 'f'), /f: no tokens/);
  });
});

describe('RateLimiter', () => {
  test('allows a burst of perMinute, then refills at perMinute per minute, per key', () => {
    const limiter = new RateLimiter(3);
    for (let i = 0; i < 3; i += 1) assert.deepEqual(limiter.take('team-a', 0), { ok: true });
    assert.deepEqual(limiter.take('team-a', 0), { ok: false, retryAfterSeconds: 20 });
    assert.deepEqual(limiter.take('team-b', 0), { ok: true }, 'another team has its own bucket');
    assert.deepEqual(limiter.take('team-a', 20_000), { ok: true }, 'one token back after 20 s');
    assert.equal(limiter.take('team-a', 20_000).ok, false);
  });
});

describe('instanceName', () => {
  test('is challenge-team, and stays a DNS label (≤ 63) with a hash when long', () => {
    assert.equal(instanceName('team-7', 'web-101'), 'web-101-team-7');
    const long = instanceName('t'.repeat(63), 'c'.repeat(63));
    assert.ok(long.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(long), long);
    assert.notEqual(long, instanceName('t'.repeat(62), 'c'.repeat(63)));
  });
});
