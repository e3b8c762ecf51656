import { readFileSync } from 'node:fs';

const INSTANCE_IN_TEXT = /ChallengeInstance ([a-z0-9][-a-z0-9]*\/[a-z0-9][-a-z0-9.]*)/;
const JOB_ID_IN_TEXT = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.\d+\.[a-z]+(?:\.r\d+)?\b/;

/** Keys of a JSON object's top level, repeats included (JSON.parse keeps only the last). */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < line.length; i += 1) {
    const char = line[i];
    if (char === '"') {
      const start = i;
      for (i += 1; i < line.length && line[i] !== '"'; i += 1) if (line[i] === '\\') i += 1;
      if (depth === 1 && line[i + 1] === ':') keys.push(JSON.parse(line.slice(start, i + 1)) as string);
    } else if (char === '{' || char === '[') depth += 1;
    else if (char === '}' || char === ']') depth -= 1;
  }
  return keys;
}

/**
 * What is wrong with a ctfleet JSON log, line by line: a line that is not one
 * JSON object with level, time, role and msg; a key given twice; a message about
 * a ChallengeInstance without its `instance` (and `uid`); a message naming a job
 * id without that `job` or its instance's `uid`; a `job` without its `instance` (unless the job is
 * malformed, InvalidJob, and names none). Lines that are not JSON
 * objects (Node's own warnings on stderr) are not ctfleet's and are skipped.
 */
export function logProblems(file: string): { lines: number; problems: string[] } {
  const problems: string[] = [];
  let lines = 0;
  for (const [index, line] of readFileSync(file, 'utf8').split('\n').entries()) {
    if (!line.startsWith('{')) continue;
    lines += 1;
    const where = `line ${index + 1}`;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      problems.push(`${where}: not JSON: ${line.slice(0, 120)}`);
      continue;
    }
    const keys = topLevelKeys(line);
    const repeated = keys.filter((key, i) => keys.indexOf(key) !== i);
    if (repeated.length > 0) problems.push(`${where}: key ${repeated.join(', ')} given twice`);
    for (const key of ['level', 'time', 'role', 'msg']) if (!(key in entry)) problems.push(`${where}: no ${key}`);
    const msg = typeof entry.msg === 'string' ? entry.msg : '';
    const instance = INSTANCE_IN_TEXT.exec(msg)?.[1];
    if (instance !== undefined && (entry.instance !== instance || typeof entry.uid !== 'string')) problems.push(`${where}: about ${instance} without instance and uid: ${msg}`);
    // A job id starts with its instance's uid: a line naming one carries that job or that uid.
    const job = JOB_ID_IN_TEXT.exec(msg)?.[0];
    if (job !== undefined && entry.job !== job && !(typeof entry.uid === 'string' && job.startsWith(`${entry.uid}.`))) problems.push(`${where}: names job ${job} without job or uid: ${msg}`);
    // A malformed job names no instance it could be for: it is the one exception.
    if (typeof entry.job === 'string' && typeof entry.instance !== 'string' && !msg.includes('InvalidJob')) problems.push(`${where}: job ${entry.job} without instance: ${msg}`);
  }
  return { lines, problems };
}
