import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { permanent } from './errors.ts';

/**
 * Flags: the secret a team proves it solved a challenge with. Pure building
 * blocks; where the key and the per-instance parts are kept is the `FlagStore`
 * port's business (src/domain/ports.ts), and docs/flags.md tells the whole story.
 *
 * A flag is its challenge's format with one `%s` replaced by a part:
 * `flag{%s}` + `3f2a…` → `flag{3f2a…}`. Parts are 128 bits as 32 lower-case hex
 * digits: derived per team (`perTeamFlagPart`), random per instance
 * (`randomFlagPart`), or an organiser's static value.
 *
 * Nothing here logs, and no error raised here carries a key, a part or a flag.
 */

/** The shortest deployment key accepted: 256 bits, HMAC-SHA256's own block of security. */
export const FLAG_KEY_MIN_BYTES = 32;

/** Bytes of a flag part: 128 bits, 32 hex digits. */
export const FLAG_PART_BYTES = 16;

/** The format of a challenge whose flag names none. */
export const DEFAULT_FLAG_FORMAT = 'flag{%s}';

/** The one placeholder of a format. */
export const FLAG_PLACEHOLDER = '%s';

/**
 * Domain separation: the first field of every message this module MACs. A new
 * derivation (or a new encoding) gets a new tag, so two derivations under one key
 * never produce the same part from the same names.
 */
export const PER_TEAM_TAG = 'ctfleet.io/flag/per-team/v1';

/** What a per-team flag is derived from. All three are DNS labels in practice. */
export interface TeamFlagSubject {
  namespace: string;
  challenge: string;
  team: string;
}

/**
 * Encodes fields unambiguously: each as its UTF-8 byte length (4 bytes, big-endian)
 * followed by its bytes. No two different lists of fields encode alike, whatever
 * characters the fields hold ("a/b","c" and "a","b/c" differ; so do "ab","" and "a","b").
 *
 * Throws a permanent `InvalidSpec` for a field with a lone surrogate: UTF-8 would
 * turn it into U+FFFD, and two different strings would encode alike.
 */
export function encodeFields(fields: readonly string[]): Buffer {
  const chunks: Buffer[] = [];
  for (const field of fields) {
    if (!field.isWellFormed()) throw permanent('InvalidSpec', 'A flag is derived only from well-formed Unicode text');
    const bytes = Buffer.from(field, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    chunks.push(length, bytes);
  }
  return Buffer.concat(chunks);
}

/**
 * The flag part of one team for one challenge in one namespace:
 * HMAC-SHA256(key, encodeFields([PER_TEAM_TAG, namespace, challenge, team])),
 * truncated to its first 128 bits, in lower-case hex.
 *
 * Guarantees: the same key and names always give the same part (nothing to store,
 * the same after any restart); without the key, one team's part says nothing about
 * another's. Changing the key changes every part.
 *
 * Throws a permanent `FlagKeyInvalid` for a key shorter than {@link FLAG_KEY_MIN_BYTES}
 * and a permanent `InvalidSpec` for an empty name.
 */
export function perTeamFlagPart(key: Buffer, subject: TeamFlagSubject): string {
  if (key.length < FLAG_KEY_MIN_BYTES) {
    throw permanent('FlagKeyInvalid', `The flag key has ${key.length} bytes; at least ${FLAG_KEY_MIN_BYTES} are needed`);
  }
  const { namespace, challenge, team } = subject;
  for (const [field, value] of [['namespace', namespace], ['challenge', challenge], ['team', team]] as const) {
    if (value === '') throw permanent('InvalidSpec', `A per-team flag needs a ${field}; it was empty`);
  }
  return createHmac('sha256', key)
    .update(encodeFields([PER_TEAM_TAG, namespace, challenge, team]))
    .digest()
    .subarray(0, FLAG_PART_BYTES)
    .toString('hex');
}

/** A fresh random part: 128 bits from the system's CSPRNG, in lower-case hex. */
export function randomFlagPart(): string {
  return randomBytes(FLAG_PART_BYTES).toString('hex');
}

/** How many times `%s` occurs in a format (occurrences do not overlap; there is no escape). */
export function placeholderCount(format: string): number {
  return format.split(FLAG_PLACEHOLDER).length - 1;
}

/** True when `format` holds `%s` exactly once: the only formats {@link renderFlag} accepts. */
export function isValidFlagFormat(format: string): boolean {
  return placeholderCount(format) === 1;
}

/**
 * The flag: `format` with its one `%s` replaced by `part`. No other sequence of the
 * format is special (`%%s` is `%` then the placeholder; `$&` stays as written).
 *
 * Throws a permanent `InvalidSpec` for a format without exactly one `%s`, or an
 * empty part. The message names neither the format nor the part.
 */
export function renderFlag(format: string, part: string): string {
  const count = placeholderCount(format);
  if (count !== 1) throw permanent('InvalidSpec', `spec.flag.format must contain "${FLAG_PLACEHOLDER}" exactly once; it contains it ${count} times`);
  if (part === '') throw permanent('InvalidSpec', 'A flag part must not be empty');
  const [before = '', after = ''] = format.split(FLAG_PLACEHOLDER);
  // Concatenation, not String.replace: a part is never read as a replacement pattern.
  return before + part + after;
}

/**
 * Whether `given` is exactly `expected` (the same string, code unit for code unit), in
 * time that does not depend on where they differ or on whether their lengths differ.
 *
 * How: both (as UTF-16, which keeps every string apart, lone surrogates too) are MACed under a fresh random key and the two 32-byte MACs are compared
 * with `timingSafeEqual`, which needs equal lengths, which MACs always have. Equal
 * MACs mean equal strings (HMAC-SHA256 collisions are out of reach).
 *
 * Caveat: hashing takes time linear in each input's length, so the time says
 * roughly how long `given` (the caller's own) and `expected` are; a flag's length
 * follows from its public format anyway. The content is never compared byte by byte.
 */
export function flagMatches(expected: string, given: string): boolean {
  const key = randomBytes(32);
  const mac = (text: string): Buffer => createHmac('sha256', key).update(text, 'utf16le').digest();
  return timingSafeEqual(mac(expected), mac(given));
}
