import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { tarOf } from '../../src/adapters/docker/tar.ts';
import type { FlagSpec, InstanceSpec } from '../../src/domain/challenge-instance.ts';
import { deliverFlag } from '../../src/domain/flag-delivery.ts';

const spec: InstanceSpec = { team: 't', challenge: 'c', image: 'i', imagePullPolicy: 'Never', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }], env: [{ name: 'FLAG', value: 'flag{placeholder}' }, { name: 'A', value: '1' }], desiredState: 'Running', priority: 0 };
const flag = (delivery: 'Env' | 'File'): FlagSpec => ({ kind: 'PerTeam', format: 'CTF{%s}', delivery, env: 'FLAG', path: '/flag/flag.txt' });

describe('deliverFlag', () => {
  test('Env: the variable is set, replacing one of the same name, the rest kept', () => {
    const { spec: delivered, files } = deliverFlag(spec, flag('Env'), 'CTF{x}');
    assert.deepEqual(delivered.env, [{ name: 'A', value: '1' }, { name: 'FLAG', value: 'CTF{x}' }]);
    assert.deepEqual(files, []);
    assert.deepEqual(spec.env?.[0], { name: 'FLAG', value: 'flag{placeholder}' }, 'the input is not changed');
  });
  test('File: a read-only file at the path, the environment untouched', () => {
    const { spec: delivered, files } = deliverFlag(spec, flag('File'), 'CTF{x}');
    assert.equal(delivered, spec);
    assert.deepEqual(files, [{ path: '/flag/flag.txt', content: 'CTF{x}\n', mode: 0o444 }]);
  });
});

describe('tarOf', () => {
  test('GNU tar reads the archive back: names, contents, modes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctfleet-tar-'));
    const archive = join(dir, 'a.tar');
    writeFileSync(archive, tarOf([{ name: 'flag.txt', content: Buffer.from('CTF{x}\n'), mode: 0o444 }, { name: 'big', content: Buffer.alloc(1500, 'y'), mode: 0o600 }]));
    assert.equal(statSync(archive).size % 512, 0);
    execFileSync('tar', ['-xf', archive, '-C', dir]);
    assert.equal(readFileSync(join(dir, 'flag.txt'), 'utf8'), 'CTF{x}\n');
    assert.equal(statSync(join(dir, 'flag.txt')).mode & 0o777, 0o444);
    assert.equal(readFileSync(join(dir, 'big'), 'utf8'), 'y'.repeat(1500));
    assert.equal(statSync(join(dir, 'big')).mode & 0o777, 0o600);
  });
  test('a name over 100 bytes is refused', () => {
    assert.throws(() => tarOf([{ name: 'n'.repeat(101), content: Buffer.alloc(0), mode: 0o444 }]), /longer than 100 bytes/);
  });
});
