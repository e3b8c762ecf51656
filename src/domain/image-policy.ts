/**
 * Which images a deployment lets challenges run: glob patterns matched against
 * the image reference as the spec writes it. `*` matches within one path
 * segment (no `/`), `**` across segments, `?` one character of a segment. So
 * `registry.example/ctf/*` allows `registry.example/ctf/web:1` but not
 * `registry.example/ctf/team/web:1`, and `registry.example/**` allows both.
 */
export function isImageAllowed(image: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => globToRegExp(pattern).test(image));
}

function globToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const char = pattern[i] ?? '';
    if (char === '*' && pattern[i + 1] === '*') {
      source += '.*';
      i += 1;
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}
