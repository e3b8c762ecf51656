import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeJobFailure, encodeJobFailure, isFirstStartJob, jobIdFor, parseJob, parseJobId } from '../../src/domain/jobs.ts';
import { isImageAllowed } from '../../src/domain/image-policy.ts';
import { containerName } from '../../src/domain/names.ts';
import { specHash } from '../../src/domain/spec-hash.ts';
import { endpointUrl } from '../../src/worker/container-shape.ts';
import type { InstanceSpec } from '../../src/domain/challenge-instance.ts';

describe('containerName', () => {
  test('two instances never share a container, even when namespace and name split a dash differently', () => {
    assert.notEqual(containerName('a-b', 'c'), containerName('a', 'b-c'));
    assert.equal(containerName('ctf', 'web-101-team-7'), 'ctfleet-ctf_web-101-team-7');
  });
});

describe('jobIdFor', () => {
  test('job ids contain no colon and are never all digits, as BullMQ requires', () => {
    for (const id of [jobIdFor('0123-4567', 3, 'start'), jobIdFor('89', 1, 'stop'), jobIdFor('12345', 9, 'delete')]) {
      assert.doesNotMatch(id, /:/);
      assert.doesNotMatch(id, /^\d+$/);
    }
    assert.equal(jobIdFor('u', 2, 'start'), 'u.2.start');
    assert.equal(jobIdFor('u', 2, 'delete'), 'u.delete', 'one delete per instance, whatever its generation');
  });
});

describe('specHash', () => {
  const spec: InstanceSpec = {
    team: 'team-7',
    challenge: 'web-101',
    image: 'ctfleet-test/web:1',
    imagePullPolicy: 'IfNotPresent',
    ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
    desiredState: 'Running',
    priority: 0,
  };
  test('does not depend on the order of keys (API server JSON and parsed job payloads differ)', () => {
    const reordered = { ...spec, ports: [{ protocol: 'TCP' as const, containerPort: 8080, name: 'http' }], resources: { pids: 64, memory: '64Mi' } };
    assert.equal(specHash(reordered), specHash({ ...spec, resources: { memory: '64Mi', pids: 64 } }));
  });

  test('changes with what shapes the container, not with desiredState or priority', () => {
    assert.equal(specHash({ ...spec, desiredState: 'Stopped', priority: 500 }), specHash(spec));
    assert.notEqual(specHash({ ...spec, image: 'ctfleet-test/web:2' }), specHash(spec));
    assert.notEqual(specHash({ ...spec, env: [{ name: 'A', value: 'b' }] }), specHash(spec));
    assert.notEqual(specHash({ ...spec, resources: { memory: '64Mi' } }), specHash(spec));
  });

  test('changes with every security setting, and not with one that asks for nothing (running containers are kept)', () => {
    for (const empty of [{}, { readOnlyRootFilesystem: false }, { capabilities: {} }, { capabilities: { add: [] } }, { tmpfs: [] }]) {
      assert.equal(specHash({ ...spec, security: empty }), specHash(spec), JSON.stringify(empty));
    }
    const variants = [
      { capabilities: { add: ['SYS_NICE'] } },
      { readOnlyRootFilesystem: true },
      { tmpfs: [{ path: '/tmp', size: '64Mi' }] },
      { tmpfs: [{ path: '/tmp', size: '65Mi' }] },
      { tmpfs: [{ path: '/run', size: '64Mi' }] },
      { runtime: 'runsc' },
    ];
    const hashes = new Set([specHash(spec), ...variants.map((security) => specHash({ ...spec, security }))]);
    assert.equal(hashes.size, variants.length + 1, 'each setting gives its own hash');
    assert.equal(specHash({ ...spec, security: { capabilities: { add: ['SYS_NICE', 'NET_BROADCAST'] } } }), specHash({ ...spec, security: { capabilities: { add: ['NET_BROADCAST', 'SYS_NICE'] } } }), 'the order of added capabilities does not matter');
  });
});

describe('endpointUrl', () => {
  test('names the scheme from the port name and protocol', () => {
    assert.equal(endpointUrl('http', 'TCP', '203.0.113.10', 31234), 'http://203.0.113.10:31234');
    assert.equal(endpointUrl('https-admin', 'TCP', '203.0.113.10', 31235), 'https://203.0.113.10:31235');
    assert.equal(endpointUrl('pwn', 'TCP', '203.0.113.10', 31236), 'tcp://203.0.113.10:31236');
    assert.equal(endpointUrl('dns', 'UDP', '::1', 31237), 'udp://[::1]:31237');
  });
});

describe('parseJobId and parseJob', () => {
  const uid = '3f1c9a2e-0000-4000-8000-000000000001';
  const target = { namespace: 'ctf', name: 'web', uid, generation: 2 };

  test('parseJobId reads back every id jobIdFor makes, and nothing else', () => {
    assert.deepEqual(parseJobId(jobIdFor(uid, 2, 'start', 3)), { uid, action: 'start', generation: 2, reschedules: 3 });
    assert.deepEqual(parseJobId(jobIdFor(uid, 1, 'delete')), { uid, action: 'delete', reschedules: 0 });
    assert.equal(isFirstStartJob(jobIdFor(uid, 1, 'start'), uid), true);
    assert.equal(isFirstStartJob(jobIdFor(uid, 1, 'start', 1), uid), false);
    for (const other of ['malformed-1', `${uid}.2.launch`, `${uid}:2:start`]) assert.equal(parseJobId(other), undefined);
  });

  test('a job payload names its target and the spec hash, never the spec', () => {
    const parsed = parseJob({ v: 2, action: 'start', target, specHash: '0123456789abcdef' });
    assert.deepEqual(parsed, { ok: true, job: { v: 2, action: 'start', target, specHash: '0123456789abcdef' } });
    const spec = { team: 't', challenge: 'c', image: 'i', imagePullPolicy: 'Never', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }], env: [{ name: 'FLAG', value: 'CTF{x}' }], desiredState: 'Running', priority: 0 };
    const legacy = parseJob({ v: 1, action: 'start', target, spec });
    assert.deepEqual(legacy, { ok: true, job: { v: 2, action: 'start', target, specHash: specHash(spec as InstanceSpec) } }, 'a version-1 spec is reduced to its hash');
    const secured = { ...spec, security: { readOnlyRootFilesystem: true, tmpfs: [{ path: '/tmp', size: '8Mi' }] } };
    assert.deepEqual(parseJob({ v: 1, action: 'start', target, spec: secured }), { ok: true, job: { v: 2, action: 'start', target, specHash: specHash(secured as InstanceSpec) } }, 'its security settings count in the hash');
    assert.deepEqual(parseJob({ v: 2, action: 'start', target }), { ok: false, problems: 'specHash: a start job needs a spec hash' });
    assert.equal(parseJob({ v: 3, action: 'stop', target }).ok, false);
  });

  test('failures cross processes as their code and message', () => {
    assert.deepEqual(decodeJobFailure(encodeJobFailure('ImagePullFailed', 'no such image: x:1')), { code: 'ImagePullFailed', message: 'no such image: x:1' });
    assert.deepEqual(decodeJobFailure('job stalled more than allowable limit'), { code: 'JobFailed', message: 'job stalled more than allowable limit' });
  });
});

describe('isImageAllowed', () => {
  const patterns = ['registry.example/ctf/*', 'ctfleet-test/web:?', 'mirror.example/**'];
  const table: [string, boolean][] = [
    ['registry.example/ctf/web:1', true],
    ['registry.example/ctf/team/web:1', false],
    ['registry.example/ctfx/web:1', false],
    ['ctfleet-test/web:1', true],
    ['ctfleet-test/web:12', false],
    ['mirror.example/a/b/c@sha256:0123', true],
    ['docker.io/registry.example/ctf/web:1', false],
    ['busybox', false],
  ];
  for (const [image, allowed] of table) {
    test(`${image} is ${allowed ? '' : 'not '}allowed`, () => {
      assert.equal(isImageAllowed(image, patterns), allowed);
    });
  }
  test('an empty list allows nothing', () => {
    assert.equal(isImageAllowed('ctfleet-test/web:1', []), false);
  });
});
