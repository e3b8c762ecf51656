import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jobIdFor } from '../../src/domain/jobs.ts';
import { containerName } from '../../src/domain/names.ts';
import { endpointUrl, specHash } from '../../src/worker/container-shape.ts';
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
});

describe('endpointUrl', () => {
  test('names the scheme from the port name and protocol', () => {
    assert.equal(endpointUrl('http', 'TCP', '203.0.113.10', 31234), 'http://203.0.113.10:31234');
    assert.equal(endpointUrl('https-admin', 'TCP', '203.0.113.10', 31235), 'https://203.0.113.10:31235');
    assert.equal(endpointUrl('pwn', 'TCP', '203.0.113.10', 31236), 'tcp://203.0.113.10:31236');
    assert.equal(endpointUrl('dns', 'UDP', '::1', 31237), 'udp://[::1]:31237');
  });
});
