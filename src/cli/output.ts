import { flagSummary, PHASES, type ChallengeView } from '../domain/challenge-view.ts';
import { shortDuration } from '../domain/durations.ts';

/** Renders rows as a kubectl-style table: upper-case headers, columns padded by three spaces. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('   ')
      .trimEnd();
  return [line(headers.map((header) => header.toUpperCase())), ...rows.map(line)].join('\n');
}

export type OutputFormat = 'table' | 'json';

/** Parses `--output table|json` / `-o json`; throws a usage error naming the flag otherwise. */
export function parseOutputFormat(args: readonly string[]): OutputFormat {
  const index = args.findIndex((arg) => arg === '--output' || arg === '-o' || arg.startsWith('--output='));
  if (index === -1) return 'table';
  const arg = args[index] ?? '';
  const value = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : args[index + 1];
  if (value === 'table' || value === 'json') return value;
  throw new UsageError(`--output: must be "table" or "json", got ${value === undefined ? 'nothing' : `"${value}"`}`);
}

/** A command line that cannot be run as given. Exit code 2. */
export class UsageError extends Error {
  readonly code = 'UsageInvalid';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * `ctfleet challenges` as a table: NAMESPACE, NAME, IMAGE, FLAG (kind/delivery),
 * POOL (idle/size, when some Challenge keeps a warm pool), INSTANCES and RUNNING, then a column for each other phase that some challenge
 * has instances in (lifecycle order), and AGE. A name instances use without a
 * Challenge shows `(no Challenge)` for its image.
 */
export function formatChallengeTable(views: readonly ChallengeView[], now: number): string {
  const phases = PHASES.filter((phase) => phase !== 'Running' && views.some((view) => view.instances.phases[phase] > 0));
  const pooled = views.some((view) => view.pool !== null);
  return formatTable(
    ['namespace', 'name', 'image', 'flag', ...(pooled ? ['pool'] : []), 'instances', 'running', ...phases, 'age'],
    views.map((view) => [
      view.namespace,
      view.name,
      view.declared ? view.image ?? '' : '(no Challenge)',
      flagSummary(view.flag),
      ...(pooled ? [view.pool === null ? '-' : `${view.pool.idle}/${view.pool.size}`] : []),
      String(view.instances.total),
      String(view.instances.running),
      ...phases.map((phase) => String(view.instances.phases[phase])),
      view.createdAt === null ? '-' : shortDuration(now - Date.parse(view.createdAt)),
    ]),
  );
}
