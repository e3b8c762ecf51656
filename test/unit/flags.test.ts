import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { CtfleetError } from '../../src/domain/errors.ts';
import {
  DEFAULT_FLAG_FORMAT,
  encodeFields,
  FLAG_KEY_MIN_BYTES,
  flagMatches,
  isValidFlagFormat,
  PER_TEAM_TAG,
  perTeamFlagPart,
  randomFlagPart,
  renderFlag,
  type TeamFlagSubject,
} from '../../src/domain/flags.ts';
import { flagSecretName } from '../../src/domain/names.ts';

const KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const subject = (namespace: string, challenge: string, team: string): TeamFlagSubject => ({ namespace, challenge, team });

/** A CtfleetError of this code whose message passes `check`. */
const failsWith = (code: string, check: (message: string) => void = () => undefined) => (error: unknown): boolean => {
  assert.ok(error instanceof CtfleetError, `a CtfleetError, got ${String(error)}`);
  assert.equal(error.code, code);
  assert.equal(error.retry, 'permanent');
  check(error.message);
  return true;
};

/**
 * A second HMAC-SHA256, written from RFC 2104 on top of plain SHA-256 (not
 * createHmac), with the message encoding written out again by hand.
 */
function referencePart(key: Buffer, { namespace, challenge, team }: TeamFlagSubject): string {
  const message = Buffer.concat(
    [PER_TEAM_TAG, namespace, challenge, team].flatMap((field) => {
      const bytes = new TextEncoder().encode(field);
      return [Buffer.from([bytes.length >>> 24, (bytes.length >>> 16) & 0xff, (bytes.length >>> 8) & 0xff, bytes.length & 0xff]), Buffer.from(bytes)];
    }),
  );
  const block = Buffer.alloc(64);
  (key.length > 64 ? createHash('sha256').update(key).digest() : key).copy(block);
  const pad = (byte: number): Buffer => Buffer.from(block.map((value) => value ^ byte));
  const inner = createHash('sha256').update(pad(0x36)).update(message).digest();
  return createHash('sha256').update(pad(0x5c)).update(inner).digest('hex').slice(0, 32);
}

describe('perTeamFlagPart', () => {
  // Computed with openssl, apart from this code base:
  //   enc() { for f in "$@"; do printf '%08x' "$(printf '%s' "$f" | wc -c)" | xxd -r -p; printf '%s' "$f"; done; }
  //   enc ctfleet.io/flag/per-team/v1 ctf web-101 team-7 \
  //     | openssl dgst -sha256 -mac HMAC -macopt hexkey:000102…1f -r | cut -c1-32
  const vectors: [string, Buffer, TeamFlagSubject, string][] = [
    ['team-7 of web-101', KEY, subject('ctf', 'web-101', 'team-7'), '5aa0afe5a76ec535c98e115bb5fec9ce'],
    ['team-12 of web-101', KEY, subject('ctf', 'web-101', 'team-12'), 'c201f6b6e70986b7aa94d9bd3ad59f1a'],
    ['namespace "a/b", challenge "c"', KEY, subject('a/b', 'c', 'team'), '8d6c23730098f922a6794b453f46e040'],
    ['namespace "a", challenge "b/c"', KEY, subject('a', 'b/c', 'team'), 'cf1bed7d96689f70dbc9dc632b0b9682'],
    ['an ASCII key (as the chart generates) and a non-ASCII team', Buffer.from('correct-horse-battery-staple-0123456789'), subject('ctf-finals', 'crypto-3', 'équipe-ü'), '2f36afc4f223c1e97af138d2cc2baf72'],
  ];
  for (const [name, key, names, expected] of vectors) {
    test(`matches the vector computed with openssl: ${name}`, () => {
      assert.equal(perTeamFlagPart(key, names), expected);
      assert.equal(referencePart(key, names), expected, 'the second implementation agrees');
    });
  }

  test('agrees with a second implementation (RFC 2104 over SHA-256) on random keys and names', () => {
    const text = (): string => randomBytes(1 + (randomBytes(1)[0] ?? 0) % 40).toString('base64').replace(/[+=]/g, '');
    for (let i = 0; i < 200; i++) {
      const key = randomBytes(FLAG_KEY_MIN_BYTES + (i % 80));
      const names = subject(text(), text(), `${text()}/ü\u0000`);
      assert.equal(perTeamFlagPart(key, names), referencePart(key, names), JSON.stringify(names));
    }
  });

  test('is reproducible: the same key and names give the same 32 lower-case hex digits every time', () => {
    const first = perTeamFlagPart(KEY, subject('ctf', 'web-101', 'team-7'));
    assert.match(first, /^[0-9a-f]{32}$/);
    for (let i = 0; i < 5; i++) assert.equal(perTeamFlagPart(Buffer.from(KEY), subject('ctf', 'web-101', 'team-7')), first);
  });

  test('each name and the key change the part', () => {
    const base = perTeamFlagPart(KEY, subject('ctf', 'web-101', 'team-7'));
    const others = [
      perTeamFlagPart(KEY, subject('ctf2', 'web-101', 'team-7')),
      perTeamFlagPart(KEY, subject('ctf', 'web-102', 'team-7')),
      perTeamFlagPart(KEY, subject('ctf', 'web-101', 'team-8')),
      perTeamFlagPart(Buffer.from(KEY.map((byte, i) => (i === 31 ? byte ^ 1 : byte))), subject('ctf', 'web-101', 'team-7')),
    ];
    assert.equal(new Set([base, ...others]).size, 5);
  });

  test('names that a joined string would confuse give different parts ("a/b","c" vs "a","b/c", and NUL separators)', () => {
    const confusable: [TeamFlagSubject, TeamFlagSubject, string][] = [
      [subject('a/b', 'c', 't'), subject('a', 'b/c', 't'), '/'],
      [subject('a', 'b/c', 't'), subject('a', 'b', 'c/t'), '/'],
      [subject('a\u0000b', 'c', 't'), subject('a', 'b\u0000c', 't'), '\u0000'],
      [subject('ab', 'c', 't'), subject('a', 'bc', 't'), ''],
    ];
    for (const [one, other, separator] of confusable) {
      // The trap the encoding avoids: joined with that separator, both are one string.
      const joined = (names: TeamFlagSubject): string => [names.namespace, names.challenge, names.team].join(separator);
      assert.equal(joined(one), joined(other));
      assert.notEqual(perTeamFlagPart(KEY, one), perTeamFlagPart(KEY, other), `${JSON.stringify(one)} vs ${JSON.stringify(other)}`);
    }
  });

  test('the encoding is length-prefixed: 4 bytes of big-endian byte length, then the UTF-8 bytes', () => {
    assert.equal(encodeFields(['ab', '', 'é']).toString('hex'), '000000026162' + '00000000' + '00000002c3a9');
    assert.notEqual(encodeFields(['ab', '']).toString('hex'), encodeFields(['a', 'b']).toString('hex'));
  });

  test(`a key shorter than ${FLAG_KEY_MIN_BYTES} bytes is refused (FlagKeyInvalid) without quoting it; ${FLAG_KEY_MIN_BYTES} bytes are enough`, () => {
    const short = Buffer.from('s3cr3t-but-only-31-bytes-long!!');
    assert.equal(short.length, 31);
    assert.throws(() => perTeamFlagPart(short, subject('ctf', 'web-101', 'team-7')), failsWith('FlagKeyInvalid', (message) => {
      assert.match(message, /31 bytes; at least 32/);
      assert.ok(!message.includes(short.toString()), 'the key is not in the message');
    }));
    assert.match(perTeamFlagPart(Buffer.alloc(32, 7), subject('ctf', 'web-101', 'team-7')), /^[0-9a-f]{32}$/);
  });

  test('empty names and names with lone surrogates are refused (InvalidSpec)', () => {
    assert.throws(() => perTeamFlagPart(KEY, subject('ctf', 'web-101', '')), failsWith('InvalidSpec', (message) => {
      assert.match(message, /team/);
    }));
    assert.throws(() => perTeamFlagPart(KEY, subject('', 'web-101', 'team-7')), failsWith('InvalidSpec', (message) => {
      assert.match(message, /namespace/);
    }));
    // UTF-8 would encode "\uD800" and "\uFFFD" alike.
    assert.throws(() => perTeamFlagPart(KEY, subject('ctf', 'web-101', 'team-\uD800')), failsWith('InvalidSpec'));
  });
});

describe('randomFlagPart', () => {
  test('is 32 lower-case hex digits (128 bits) and never repeats in 10,000 draws', () => {
    const parts = Array.from({ length: 10_000 }, () => randomFlagPart());
    for (const part of parts.slice(0, 100)) assert.match(part, /^[0-9a-f]{32}$/);
    assert.equal(new Set(parts).size, parts.length);
  });
});

describe('renderFlag', () => {
  const table: [string, string, string, string][] = [
    ['the default format', DEFAULT_FLAG_FORMAT, '5aa0afe5a76ec535c98e115bb5fec9ce', 'flag{5aa0afe5a76ec535c98e115bb5fec9ce}'],
    ['a format with text around the placeholder', 'CTF{team_%s_gg}', 'abc', 'CTF{team_abc_gg}'],
    ['a bare placeholder', '%s', 'abc', 'abc'],
    ['a format holding replacement patterns, which stay as written', '$&{%s}$1', 'abc', '$&{abc}$1'],
    ['a part holding replacement patterns, which stays as written', 'flag{%s}', "$&$'$`", "flag{$&$'$`}"],
    ['"%%s": the placeholder after a percent sign', '100%%s', 'abc', '100%abc'],
  ];
  for (const [name, format, part, expected] of table) {
    test(`renders ${name}`, () => {
      assert.ok(isValidFlagFormat(format));
      assert.equal(renderFlag(format, part), expected);
    });
  }

  const refused: [string, string, number][] = [
    ['no placeholder', 'flag{static}', 0],
    ['two placeholders', 'flag{%s-%s}', 2],
    ['an empty format', '', 0],
    ['a placeholder of another kind only', 'flag{%d}', 0],
  ];
  for (const [name, format, count] of refused) {
    test(`refuses a format with ${name} (InvalidSpec), naming the rule and neither format nor part`, () => {
      assert.ok(!isValidFlagFormat(format));
      assert.throws(() => renderFlag(format, 'f00dfeed'), failsWith('InvalidSpec', (message) => {
        assert.match(message, new RegExp(`exactly once; it contains it ${count} times`));
        assert.ok(!message.includes('f00dfeed'));
        if (format !== '') assert.ok(!message.includes(format));
      }));
    });
  }

  test('refuses an empty part', () => {
    assert.throws(() => renderFlag(DEFAULT_FLAG_FORMAT, ''), failsWith('InvalidSpec'));
  });
});

describe('flagMatches', () => {
  const flag = 'flag{5aa0afe5a76ec535c98e115bb5fec9ce}';
  const table: [string, string, string, boolean][] = [
    ['the same flag', flag, flag, true],
    ['the same flag built another way', flag, ['flag{', '5aa0afe5a76ec535c98e115bb5fec9ce', '}'].join(''), true],
    ['two empty strings', '', '', true],
    ['non-ASCII text, equal', 'flag{équipe-ü}', 'flag{équipe-ü}', true],
    ['one character changed at the end', flag, 'flag{5aa0afe5a76ec535c98e115bb5fec9cf}', false],
    ['one character changed at the start', flag, 'Flag{5aa0afe5a76ec535c98e115bb5fec9ce}', false],
    ['another team\'s flag (same length)', flag, 'flag{c201f6b6e70986b7aa94d9bd3ad59f1a}', false],
    ['a prefix of the flag', flag, flag.slice(0, -1), false],
    ['the flag with a trailing newline', flag, `${flag}\n`, false],
    ['the flag in upper case', flag, flag.toUpperCase(), false],
    ['an empty guess', flag, '', false],
    ['a guess against an empty flag', '', flag, false],
    ['a guess far longer than the flag', flag, flag.repeat(1000), false],
    ['a lone surrogate against U+FFFD (alike in UTF-8)', 'flag{\uD800}', 'flag{\uFFFD}', false],
    ['the same lone surrogate', 'flag{\uD800}', 'flag{\uD800}', true],
  ];
  for (const [name, expected, given, result] of table) {
    test(`${result ? 'accepts' : 'refuses'} ${name}`, () => {
      assert.equal(flagMatches(expected, given), result);
    });
  }

  test('agrees with === on random pairs of any lengths', () => {
    for (let i = 0; i < 500; i++) {
      const expected = randomBytes(i % 7).toString('hex');
      const given = i % 3 === 0 ? expected : randomBytes((i * 5) % 7).toString('hex');
      assert.equal(flagMatches(expected, given), expected === given);
    }
  });
});

describe('flagSecretName', () => {
  test('is the instance name, "-flag-" and the first 8 hex digits of its uid', () => {
    assert.equal(flagSecretName('web-101-team-7', '3f1c9a2e-0000-4000-8000-000000000001'), 'web-101-team-7-flag-3f1c9a2e');
  });

  test('differs for an instance created again under the same name (a new uid)', () => {
    assert.notEqual(flagSecretName('web', '3f1c9a2e-0000-4000-8000-000000000001'), flagSecretName('web', '7d00aa11-0000-4000-8000-000000000001'));
  });

  test('is a valid Secret name for the longest instance name', () => {
    const name = flagSecretName('a'.repeat(63), 'ABCDEF12-0000-4000-8000-000000000001');
    assert.match(name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    assert.ok(name.length <= 253);
  });

  test('refuses a uid without 8 hex digits (MalformedObject)', () => {
    assert.throws(() => flagSecretName('web', 'x-y'), (error: unknown) => error instanceof CtfleetError && error.code === 'MalformedObject');
  });
});
