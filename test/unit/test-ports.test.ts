import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { filesUnder } from '../support/files.ts';

// Every loopback connection of the stack (API server, etcd, Redis, Docker) takes a
// local port from Linux's ephemeral range. A fixed port a test or benchmark binds
// there can be held by one of them at that moment; the port-conflict test hung a
// CI run that way. Fixed ports in tests and benchmarks stay below the range.

const ROOT = new URL('../..', import.meta.url).pathname;
const EPHEMERAL = { low: 32_768, high: 60_999 };

const sources = (dir: string): string[] => filesUnder(dir, (name) => name.endsWith('.ts'), ['results', 'unit']);

/** Fixed host ports a source hands to ctfleet (a port range) or binds itself, as [low, high] pairs. */
function fixedPorts(source: string): [number, number][] {
  const number = (text: string): number => Number(text.replaceAll('_', ''));
  const patterns = [
    /PORT_RANGE\D{0,8}(\d[\d_]*)-(\d[\d_]*)/g,
    /\{\s*min:\s*(\d[\d_]*),\s*max:\s*(\d[\d_]*)\s*\}/g,
    /RANGE\s*=\s*\[(\d[\d_]*),\s*(\d[\d_]*)\]/g,
    /listen(?:On)?\((?:\w+,\s*)?(\d[\d_]*)()/g,
  ];
  return patterns.flatMap((pattern) => [...source.matchAll(pattern)].map((match): [number, number] => {
    const low = number(match[1] ?? '0');
    return [low, match[2] === '' || match[2] === undefined ? low : number(match[2])];
  }));
}

test('the fixed ports are found in the forms the tests use', () => {
  assert.deepEqual(fixedPorts("CTFLEET_PORT_RANGE: '26800-26899',"), [[26_800, 26_899]]);
  assert.deepEqual(fixedPorts('nodeReconciler(node, { min: 32900, max: 32949 })'), [[32_900, 32_949]]);
  assert.deepEqual(fixedPorts('const RANGE = [32990, 32991];'), [[32_990, 32_991]]);
  assert.deepEqual(fixedPorts("await listen(server, 36999, '127.0.0.1'); listenOn(19379); listen(server, 0, h)"), [[36_999, 36_999], [19_379, 19_379], [0, 0]]);
});

test('no test or benchmark binds a fixed port inside the ephemeral range', () => {
  const inside = [...sources(join(ROOT, 'test')), ...sources(join(ROOT, 'bench'))].flatMap((path) =>
    fixedPorts(readFileSync(path, 'utf8'))
      .filter(([low, high]) => high >= EPHEMERAL.low && low <= EPHEMERAL.high)
      .map(([low, high]) => `${relative(ROOT, path)}: ${String(low)}-${String(high)}`));
  assert.deepEqual(inside, []);
});
