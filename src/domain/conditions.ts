import type { Condition } from './challenge-instance.ts';

/** RFC 3339 with second precision, as Kubernetes writes timestamps. */
export function kubeTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Keeps lastTransitionTime unless the condition's status flips (Kubernetes
 * convention), and bounds the message ({@link boundText}): no condition either
 * writer sets carries more than {@link MAX_MESSAGE_BYTES}.
 */
export function mergeCondition(previous: Condition | undefined, next: Omit<Condition, 'lastTransitionTime'>, now: Date): Condition {
  const lastTransitionTime = previous !== undefined && previous.status === next.status ? previous.lastTransitionTime : kubeTime(now);
  return { ...next, message: boundText(next.message), lastTransitionTime };
}

/** The most a condition message, an Event's message, or any text from a container's output may carry, in UTF-8 bytes. */
export const MAX_MESSAGE_BYTES = 1024;

/** What marks a text cut short at its end by {@link boundText}… */
export const TRUNCATED = '… (truncated)';
/** …and at its start (`keep: 'end'`). */
export const TRUNCATED_BEFORE = '(truncated) …';

// ANSI escape sequences: CSI (`ESC [ … final`, or its one-byte C1 form), OSC
// (`ESC ] … BEL|ST`, or to the end when unterminated), and any other `ESC
// [intermediates] final` (charset changes, resets, cursor saves).
// eslint-disable-next-line no-control-regex
const ESCAPES = /\u001b\[[0-?]*[ -/]*[@-~]|\u009b[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|\u001b[ -/]*[0-~]?/g;
// C0 and C1 controls but tab and newline, DEL, and the bidirectional overrides
// that make text read other than it is stored.
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

const GRAPHEMES = new Intl.Segmenter('en', { granularity: 'grapheme' });

function utf8Length(text: string): number {
  let bytes = 0;
  for (const char of text) {
    const point = char.codePointAt(0) ?? 0;
    bytes += point < 0x80 ? 1 : point < 0x800 ? 2 : point < 0x10000 ? 3 : 4;
  }
  return bytes;
}

/**
 * Lines of a log tail joined with ` | ` in at most `maxBytes`, each bounded to its
 * end: short lines are kept whole and long ones share what is left, so one long
 * line cannot push another's last words out (stdout and stderr reach a log in
 * either order). Pure.
 */
export function boundLines(lines: readonly string[], maxBytes: number): string {
  const separator = ' | ';
  const clean = lines.map((line) => boundText(line, { maxBytes: Number.MAX_SAFE_INTEGER }));
  let left = maxBytes - utf8Length(separator) * Math.max(0, clean.length - 1);
  const shares = new Array<number>(clean.length).fill(0);
  const byLength = clean.map((line, i) => ({ i, bytes: utf8Length(line) })).sort((a, b) => a.bytes - b.bytes);
  for (const [rank, { i, bytes }] of byLength.entries()) {
    shares[i] = Math.min(bytes, Math.floor(left / (clean.length - rank)));
    left -= shares[i] ?? 0;
  }
  return boundText(clean.map((line, i) => boundText(line, { maxBytes: shares[i] ?? 0, keep: 'end' })).join(separator), { maxBytes, keep: 'end' });
}

/**
 * Text ctfleet does not control — above all a container's output — made fit for
 * a condition, an Event, `status.message`, Redis and API responses: escape
 * sequences and control characters (but tab and newline) removed, then cut to
 * `maxBytes` of UTF-8 between two characters as people see them (grapheme
 * clusters), with a visible marker. `keep: 'end'` keeps the end instead (a log
 * tail's last words). Pure.
 *
 * Guarantees: the result is at most `maxBytes` bytes (for `maxBytes` ≥ 15, the
 * marker's size), and bounding it again changes nothing.
 */
export function boundText(text: string, options: { maxBytes?: number; keep?: 'start' | 'end' } = {}): string {
  const { maxBytes = MAX_MESSAGE_BYTES, keep = 'start' } = options;
  const clean = text.toWellFormed().replace(ESCAPES, '').replace(CONTROLS, '');
  if (utf8Length(clean) <= maxBytes) return clean;
  const marker = keep === 'start' ? TRUNCATED : TRUNCATED_BEFORE;
  const graphemes = Array.from(GRAPHEMES.segment(clean), (part) => part.segment);
  let budget = maxBytes - utf8Length(marker);
  const kept: string[] = [];
  for (const grapheme of keep === 'start' ? graphemes : graphemes.reverse()) {
    budget -= utf8Length(grapheme);
    if (budget < 0) break;
    kept.push(grapheme);
  }
  return keep === 'start' ? `${kept.join('').trimEnd()}${marker}` : `${marker}${kept.reverse().join('').trimStart()}`;
}
