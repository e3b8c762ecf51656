import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatChallengeTable, formatTable, parseOutputFormat, UsageError } from '../../src/cli/output.ts';
import { PHASES, type ChallengeView } from '../../src/domain/challenge-view.ts';
import type { Phase } from '../../src/domain/challenge-instance.ts';

describe('formatTable', () => {
  test('pads every column but the last to its widest cell', () => {
    const table = formatTable(['team', 'phase', 'endpoint'], [
      ['team-7', 'Running', 'http://127.0.0.1:31234'],
      ['team-12', 'Pending', ''],
    ]);
    assert.equal(table, ['TEAM      PHASE     ENDPOINT', 'team-7    Running   http://127.0.0.1:31234', 'team-12   Pending'].join('\n'));
  });
});

describe('parseOutputFormat', () => {
  test('defaults to a table', () => {
    assert.equal(parseOutputFormat([]), 'table');
  });
  test('reads -o json, --output json and --output=json', () => {
    assert.equal(parseOutputFormat(['-o', 'json']), 'json');
    assert.equal(parseOutputFormat(['--output', 'json']), 'json');
    assert.equal(parseOutputFormat(['--output=json']), 'json');
  });
  test('an unknown format is a usage error naming the flag', () => {
    assert.throws(() => parseOutputFormat(['-o', 'yaml']), (error: unknown) => error instanceof UsageError && error.message === '--output: must be "table" or "json", got "yaml"');
    assert.throws(() => parseOutputFormat(['--output']), /got nothing/);
  });
});

describe('formatChallengeTable', () => {
  const NOW = Date.parse('2026-11-21T12:00:00Z');
  const challenge = (name: string, phases: Partial<Record<Phase, number>>, extra: Partial<ChallengeView> = {}): ChallengeView => {
    const all = { ...Object.fromEntries(PHASES.map((phase) => [phase, 0])), ...phases } as Record<Phase, number>;
    const total = Object.values(all).reduce((sum, count) => sum + count, 0);
    return {
      namespace: 'ctf', name, declared: true, image: `ctf/${name}:1`, flag: { kind: 'PerTeam', delivery: 'Env' }, generation: 1, createdAt: '2026-11-21T09:00:00Z', deleting: false, pool: null,
      instances: { total, running: all.Running, phases: all },
      ...extra,
    };
  };

  test('NAME, IMAGE, FLAG, INSTANCES, RUNNING, then a column for each other phase that has instances, in lifecycle order, and AGE', () => {
    const table = formatChallengeTable([
      challenge('web-101', { Running: 3, Failed: 1 }),
      challenge('pwn-300', { Pending: 1 }, { flag: null }),
      challenge('ghost', { Failed: 2 }, { declared: false, image: null, flag: null, generation: null, createdAt: null }),
    ], NOW);
    assert.equal(table, [
      'NAMESPACE   NAME      IMAGE            FLAG          INSTANCES   RUNNING   PENDING   FAILED   AGE',
      'ctf         web-101   ctf/web-101:1    PerTeam/Env   4           3         0         1        3h',
      'ctf         pwn-300   ctf/pwn-300:1    -             1           0         1         0        3h',
      'ctf         ghost     (no Challenge)   -             2           0         0         2        -',
    ].join('\n'));
  });

  test('POOL (idle/size) appears once some Challenge keeps a warm pool', () => {
    const table = formatChallengeTable([challenge('web-101', { Running: 1 }, { pool: { size: 50, idle: 47 } }), challenge('pwn-300', {})], NOW);
    assert.equal(table, [
      'NAMESPACE   NAME      IMAGE           FLAG          POOL    INSTANCES   RUNNING   AGE',
      'ctf         web-101   ctf/web-101:1   PerTeam/Env   47/50   1           1         3h',
      'ctf         pwn-300   ctf/pwn-300:1   PerTeam/Env   -       0           0         3h',
    ].join('\n'));
  });

  test('without instances, only the fixed columns', () => {
    assert.equal(formatChallengeTable([challenge('web-101', {})], NOW).split('\n')[0], 'NAMESPACE   NAME      IMAGE           FLAG          INSTANCES   RUNNING   AGE');
  });
});
