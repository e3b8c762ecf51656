import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatTable, parseOutputFormat, UsageError } from '../../src/cli/output.ts';

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
