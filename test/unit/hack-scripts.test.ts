import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { filesUnder } from '../support/files.ts';

// hack/ runs under `set -o pipefail`. A reader that stops at its first match
// (`grep -q`, `grep -m`, `head`) can close the pipe while the writer still writes;
// the writer then dies of SIGPIPE and the whole test reads as false although it
// matched. `ip addr show dev ctfleet0 | grep -q …` failed this way about once in
// eight repairs and `up` died on "Address already assigned" with the API server down.
// Such a test reads the whole output first: grep -q PATTERN <<<"$(command)".

const ROOT = new URL('../..', import.meta.url).pathname;

const scripts = (dir: string): string[] => filesUnder(dir, (name) => name.endsWith('.sh') || name === 'run');

/** Lines that pipe into a reader that may stop early, without `|| true` to absorb the writer's SIGPIPE. */
function earlyExitingPipes(source: string): string[] {
  const joined = source.replace(/\s*\\\n\s*/g, ' ');
  const reader = /\|\s*(grep\s+(-\w*[qm]\w*\b|--quiet|--max-count)|head\b)/g;
  return joined.split('\n').filter((line) => {
    if (line.trimStart().startsWith('#')) return false;
    // A pipeline ends at `;`, `&&` or `then`; `|| true` before that absorbs the SIGPIPE.
    return [...line.matchAll(reader)].some((match) => !/^[^;&]*?\|\|\s*true\b/.test(line.slice((match.index) + match[0].length).split(/;|&&|\bthen\b/)[0] ?? ''));
  });
}

test('the pattern is found where it is and not where the output is read whole', () => {
  assert.deepEqual(earlyExitingPipes('ip addr show dev x | grep -q "inet 1"\n'), ['ip addr show dev x | grep -q "inet 1"']);
  assert.deepEqual(earlyExitingPipes('curl -sf \\\n  http://x/readyz | grep -qF ok\n'), ['curl -sf http://x/readyz | grep -qF ok']);
  assert.deepEqual(earlyExitingPipes('ctr images ls | head -1\n'), ['ctr images ls | head -1']);
  assert.deepEqual(earlyExitingPipes('grep -q "inet 1" <<<"$(ip addr show dev x)"\n'), []);
  assert.deepEqual(earlyExitingPipes('ns=$(ctr info | grep -o x | head -1 || true)\n'), []);
  assert.deepEqual(earlyExitingPipes('# ip addr | grep -q x, as a comment\n'), []);
  assert.deepEqual(earlyExitingPipes('if [ "$(cat f || true)" = x ] && ctr ls | grep -q .; then :; fi\n'), ['if [ "$(cat f || true)" = x ] && ctr ls | grep -q .; then :; fi']);
});

test('no script under hack/ or .ci/ pipes into a reader that may stop before the writer ends', () => {
  const found = [...scripts(join(ROOT, 'hack')), ...scripts(join(ROOT, '.ci'))].flatMap((path) =>
    earlyExitingPipes(readFileSync(path, 'utf8')).map((line) => `${relative(ROOT, path)}: ${line.trim()}`));
  assert.deepEqual(found, []);
});
