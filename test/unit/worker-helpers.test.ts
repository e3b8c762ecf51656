import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PortAllocator } from '../../src/worker/port-allocator.ts';
import { parsePortRange } from '../../src/domain/port-range.ts';
import { probeDelayMs } from '../../src/worker/readiness.ts';
import { attributeToChallenge } from '../../src/worker/node-reconciler.ts';
import { permanent } from '../../src/domain/errors.ts';
import type { ChallengeInstance } from '../../src/domain/challenge-instance.ts';
import { parseQuantity, toBytes, toNanoCpus } from '../../src/domain/quantities.ts';

function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] ?? 0;
}

describe('PortAllocator', () => {
  test('never hands out a port in use or already reserved', () => {
    const allocator = new PortAllocator({ min: 31000, max: 31009 }, sequence(0, 0.1, 0.2));
    const first = allocator.allocate(3, new Set([31000]));
    assert.ok(first);
    assert.equal(new Set(first).size, 3);
    assert.ok(!first.includes(31000));
    const second = allocator.allocate(6, new Set([31000]));
    assert.ok(second);
    assert.deepEqual(second.filter((port) => first.includes(port)), []);
    assert.equal(allocator.allocate(1, new Set([31000])), undefined, 'the range is exhausted');
    allocator.release(first);
    assert.equal(allocator.allocate(3, new Set([31000]))?.length, 3);
  });

  test('keeps the preferred ports when they are free', () => {
    const allocator = new PortAllocator({ min: 31000, max: 31999 });
    assert.deepEqual(allocator.allocate(2, new Set(), [31500, 31501]), [31500, 31501]);
  });
});

describe('parsePortRange', () => {
  test('reads MIN-MAX and refuses anything else with the rule', () => {
    assert.deepEqual(parsePortRange('30000-32767'), { min: 30000, max: 32767 });
    for (const bad of ['32767-30000', '0-10', '1-70000', '30000', 'a-b']) {
      assert.throws(() => parsePortRange(bad), /must be MIN-MAX/);
    }
  });
});

describe('quantities', () => {
  const table: [string, number | undefined][] = [
    ['500m', 0.5],
    ['2', 2],
    ['1.5', 1.5],
    ['256Mi', 256 * 2 ** 20],
    ['1G', 1e9],
    ['1e3', 1000],
    ['12Q', undefined],
    ['', undefined],
  ];
  for (const [input, expected] of table) {
    test(`parses "${input}"`, () => {
      assert.equal(parseQuantity(input), expected);
    });
  }
  test('converts CPU to NanoCpus and memory to bytes', () => {
    assert.equal(toNanoCpus('500m'), 500_000_000);
    assert.equal(toBytes('64Mi'), 67_108_864);
    assert.equal(toNanoCpus('0'), undefined);
  });
});

describe('PortAllocator.commit', () => {
  test('keeps a created container\u2019s ports reserved for the grace period, then frees them', async () => {
    const allocator = new PortAllocator({ min: 31000, max: 31000 });
    const ports = allocator.allocate(1, new Set());
    assert.deepEqual(ports, [31000]);
    allocator.commit([31000], 20);
    assert.equal(allocator.allocate(1, new Set()), undefined, 'a start that listed containers before the create still cannot take the port');
    await new Promise((resolve) => setTimeout(resolve, 40));
    assert.deepEqual(allocator.allocate(1, new Set()), [31000]);
  });
});

describe('probeDelayMs', () => {
  test('probes close together at first, then every 150 ms', () => {
    assert.deepEqual(Array.from({ length: 7 }, (_, attempt) => probeDelayMs(attempt)), [10, 20, 40, 80, 150, 150, 150]);
  });

  test('the first four waits add up to one steady interval; every later wait is that interval', () => {
    // 10 + 20 + 40 + 80 = 150 ms for the first four waits; after that, 150 ms steps.
    const waits = Array.from({ length: 100 }, (_, attempt) => probeDelayMs(attempt));
    assert.equal(waits.slice(4).every((wait) => wait === 150), true);
    assert.equal(waits.slice(0, 4).reduce((sum, wait) => sum + wait, 0), 150);
  });
});

describe('attributeToChallenge', () => {
  const instance = (challengeRef?: { name: string }): ChallengeInstance => ({
    metadata: { namespace: 'ctf', name: 'web-101-team-7', uid: 'u', generation: 1 },
    spec: { team: 'team-7', challenge: 'web-101', image: 'web:1', imagePullPolicy: 'IfNotPresent', ports: [], desiredState: 'Running', priority: 0, ...(challengeRef === undefined ? {} : { challengeRef }) },
  });

  test("a refusal of a field the Challenge gives names the Challenge", () => {
    const error = attributeToChallenge(permanent('InvalidSpec', 'spec.resources.memory: 4Gi is above the maximum'), instance({ name: 'web-101' }));
    assert.equal(error.message, 'Challenge web-101: spec.resources.memory: 4Gi is above the maximum');
    assert.equal(error.code, 'InvalidSpec');
    assert.equal(attributeToChallenge(permanent('ImageNotAllowed', 'spec.image: x is not allowed'), instance({ name: 'web-101' })).message, 'Challenge web-101: spec.image: x is not allowed');
  });

  test("the instance's own fields, direct instances and other failures are left as they are", () => {
    const own = permanent('InvalidSpec', "spec.ttlSeconds 9000 is above Challenge ctf/web-101's lifetime.maxSeconds");
    assert.equal(attributeToChallenge(own, instance({ name: 'web-101' })), own);
    const direct = permanent('InvalidSpec', 'spec.resources.memory: 4Gi is above the maximum');
    assert.equal(attributeToChallenge(direct, instance()), direct);
    const exited = permanent('ContainerExited', 'spec.image exited');
    assert.equal(attributeToChallenge(exited, instance({ name: 'web-101' })), exited);
  });
});
