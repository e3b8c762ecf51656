import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { boundLines, boundText, MAX_MESSAGE_BYTES, mergeCondition, TRUNCATED, TRUNCATED_BEFORE } from '../../src/domain/conditions.ts';
import { formatBytes } from '../../src/domain/quantities.ts';

const bytes = (text: string): number => Buffer.byteLength(text, 'utf8');

describe('boundText', () => {
  const cases: { name: string; text: string; options?: Parameters<typeof boundText>[1]; expect: string | ((result: string) => void) }[] = [
    { name: 'short plain text is kept as it is', text: 'fatal: challenge misconfigured', expect: 'fatal: challenge misconfigured' },
    { name: 'tabs and newlines are kept', text: 'a\tb\nc', expect: 'a\tb\nc' },
    { name: 'colours and cursor moves (CSI) are removed', text: '\u001b[31;1mred\u001b[0m \u001b[2J\u001b[Hhome', expect: 'red home' },
    { name: 'a terminal title (OSC, BEL or ST ended) is removed', text: '\u001b]0;pwned\u0007a\u001b]8;;http://x\u001b\\b', expect: 'ab' },
    { name: 'the one-byte CSI and other escapes (reset, charset, cursor save) are removed', text: '\u009b31mx\u001bcy\u001b(Bz\u001b7!\u001b', expect: 'xyz!' },
    { name: 'carriage returns, NUL, backspace, DEL and C1 controls are removed', text: 'ok\rfake\u0000\u0008\u007f\u0085!', expect: 'okfake!' },
    { name: 'bidirectional overrides are removed', text: 'abc\u202edcba\u2066x\u2069', expect: 'abcdcbax' },
    { name: 'a lone surrogate becomes the replacement character', text: 'a\ud800b', expect: 'a\ufffdb' },
    { name: 'exactly the maximum is not cut', text: 'x'.repeat(MAX_MESSAGE_BYTES), expect: 'x'.repeat(MAX_MESSAGE_BYTES) },
    {
      name: 'one byte more is cut, with the marker, to the maximum',
      text: 'x'.repeat(MAX_MESSAGE_BYTES + 1),
      expect: (result) => {
        assert.equal(bytes(result), MAX_MESSAGE_BYTES);
        assert.ok(result.endsWith(TRUNCATED));
      },
    },
    {
      name: 'a long line (100 KiB) is cut to 1 KiB, keeping its start',
      text: `START${'y'.repeat(100 * 1024)}END`,
      expect: (result) => {
        assert.ok(bytes(result) <= 1024);
        assert.ok(result.startsWith('START') && result.endsWith(`y${TRUNCATED}`));
      },
    },
    {
      name: 'keep end keeps the last words, marked at the start',
      text: `START${'y'.repeat(10_000)} panic: out of luck`,
      options: { keep: 'end', maxBytes: 100 },
      expect: (result) => {
        assert.equal(bytes(result), 100);
        assert.ok(result.startsWith(TRUNCATED_BEFORE) && result.endsWith('y panic: out of luck'));
      },
    },
    {
      name: 'multi-byte characters are never split (UTF-8 safe)',
      text: 'é'.repeat(2_000),
      options: { maxBytes: 100 },
      expect: (result) => {
        assert.ok(bytes(result) <= 100);
        assert.equal(result, `${'é'.repeat(42)}${TRUNCATED}`);
      },
    },
    {
      name: 'an emoji of several code points is never split',
      text: `${'a'.repeat(80)}${'👩‍👩‍👧'.repeat(10)}`,
      options: { maxBytes: 110 },
      expect: (result) => {
        assert.ok(bytes(result) <= 110);
        assert.equal(result, `${'a'.repeat(80)}${TRUNCATED}`, 'the 18-byte family does not fit beside the marker, so none of it is kept');
      },
    },
    {
      name: 'escapes are removed before measuring: a flood of colour codes around short text is not cut',
      text: `${'\u001b[0m'.repeat(1_000)}hello`,
      expect: 'hello',
    },
  ];

  for (const { name, text, options, expect } of cases) {
    test(name, () => {
      const result = boundText(text, options);
      if (typeof expect === 'string') assert.equal(result, expect);
      else expect(result);
      assert.equal(boundText(result, options), result, 'bounding again changes nothing');
    });
  }

  test('any text, however hostile, comes out within the bound and without control characters', () => {
    const hostile = ['\u001b[', '\u001b]', '\u0007', '\r', '\u0000', 'é', '👍', 'x', '\n', '\u009b', '\u202e', '\ud83d'];
    let seed = 7;
    for (let round = 0; round < 200; round += 1) {
      let text = '';
      const length = round * 13;
      for (let i = 0; i < length; i += 1) {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        text += hostile[seed % hostile.length] ?? '';
      }
      for (const keep of ['start', 'end'] as const) {
        const result = boundText(text, { keep });
        assert.ok(bytes(result) <= MAX_MESSAGE_BYTES);
        // eslint-disable-next-line no-control-regex
        assert.doesNotMatch(result, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
        assert.ok(result.isWellFormed());
      }
    }
  });
});

describe('mergeCondition', () => {
  test('bounds the message of every condition it makes', () => {
    const condition = mergeCondition(undefined, { type: 'Ready', status: 'False', reason: 'ContainerExited', message: `\u001b[31m${'z'.repeat(20_000)}`, observedGeneration: 1 }, new Date('2026-11-21T12:00:00Z'));
    assert.ok(bytes(condition.message) <= MAX_MESSAGE_BYTES);
    assert.ok(condition.message.startsWith('zzz') && condition.message.endsWith(TRUNCATED));
  });
});

describe('formatBytes', () => {
  const cases: [number, string][] = [
    [16 * 2 ** 20, '16Mi'],
    [256 * 2 ** 20, '256Mi'],
    [2 * 2 ** 30, '2Gi'],
    [1536 * 2 ** 20, '1536Mi'],
    [2 ** 10, '1Ki'],
    [1000, '1000'],
  ];
  for (const [value, expected] of cases) {
    test(`${value} bytes read ${expected}`, () => {
      assert.equal(formatBytes(value), expected);
    });
  }
});

describe('boundLines', () => {
  const long = 'x'.repeat(20_480);
  const last = 'fatal: the last words';
  for (const [name, lines] of [['stdout first', [long, last]], ['stderr first', [last, long]]] as const) {
    test(`a long line and a short one (${name}): the short one whole, the long one to its end, within the bound`, () => {
      const text = boundLines(lines, 768);
      assert.ok(Buffer.byteLength(text) <= 768, `${Buffer.byteLength(text)} bytes`);
      assert.ok(Buffer.byteLength(text) > 700, 'the room is used');
      assert.ok(text.includes(last));
      assert.match(text, /\(truncated\) …x+/);
    });
  }
  test('lines that fit are joined unchanged', () => {
    assert.equal(boundLines(['a', 'b c', ''], 768), 'a | b c | ');
  });
  test('escapes go, as in boundText', () => {
    assert.equal(boundLines(['\u001b[31mred\u001b[0m', 'ok'], 768), 'red | ok');
  });
  test('two long lines share the room', () => {
    const text = boundLines([long, 'y'.repeat(5_000)], 768);
    assert.ok(Buffer.byteLength(text) <= 768);
    assert.match(text, /x+ \| \(truncated\) …y+$/);
  });
});
