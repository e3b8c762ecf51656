import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseNodeCpus } from '../../bench/lib/cores.ts';

test('--node-cpus takes CPU numbers of this machine and leaves the control plane at least one', () => {
  assert.deepEqual(parseNodeCpus('1', 2), [1]);
  assert.deepEqual(parseNodeCpus('3, 1,1', 4), [1, 3]);
  assert.throws(() => parseNodeCpus('2', 2), /--node-cpus: must list CPU numbers from 0 to 1/);
  assert.throws(() => parseNodeCpus('1-2', 4), /--node-cpus: must list CPU numbers .* \(got "1-2"\)/);
  assert.throws(() => parseNodeCpus('', 2), /--node-cpus: must list CPU numbers/);
  assert.throws(() => parseNodeCpus('0,1', 2), /must leave at least one of the 2 CPUs to the control plane/);
});
