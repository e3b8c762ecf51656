import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './ctfleet.ts';
import { eventually } from './stack.ts';

/** Where `hack/stack.sh` keeps its state (the default, unless CTFLEET_STATE_DIR moves it). */
const STATE_DIR = process.env.CTFLEET_STATE_DIR ?? join(ROOT, '.stack');

export type StackPart = 'redis' | 'dockerd' | 'kube-apiserver';

function run(command: string, args: string[], timeoutMs: number): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, env: process.env }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : 1, output: `${stdout}${stderr}` });
    });
  });
}

function pidOf(part: StackPart): number | undefined {
  const file = join(STATE_DIR, 'pids', `${part}.pid`);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True when the stack started this part itself (so a test may restart it). */
export function stackOwns(part: StackPart): boolean {
  if (part === 'dockerd') return existsSync(join(STATE_DIR, 'dockerd.own.pid')) && pidOf(part) !== undefined;
  return pidOf(part) !== undefined;
}

/**
 * Stops one part of the local stack with `signal`, waits for it to exit, and
 * resolves with a function that brings it back through `hack/stack.sh up`
 * (which starts only what is down). Redis runs without persistence, so a
 * restarted Redis is empty: every key is lost. A failed `up` fails the caller
 * with its output, after a second `up` has tried to leave the stack whole for
 * the tests that follow.
 */
async function stopPart(part: StackPart, signal: NodeJS.Signals = 'SIGKILL'): Promise<() => Promise<void>> {
  const pid = pidOf(part);
  if (pid === undefined) throw new Error(`the stack has no pid for ${part}`);
  process.kill(pid, signal);
  await eventually(`${part} (pid ${pid}) to exit`, 60_000, () => Promise.resolve(alive(pid) ? undefined : true));
  return async () => {
    const up = (): Promise<{ code: number; output: string }> => run('bash', [join(ROOT, 'hack/stack.sh'), 'up'], 300_000);
    const result = await up();
    if (result.code === 0) return;
    const again = await up();
    throw new Error(`hack/stack.sh up failed after stopping ${part} (a second up ${again.code === 0 ? 'brought it back' : 'failed too'}):\n${result.output}`);
  };
}

/**
 * An outage of one part: stops it, runs `whileDown`, and brings it back whether
 * or not `whileDown` passed, so a failed check never leaves the stack without
 * the part for the tests that follow. Resolves with the moment it was stopped.
 */
export async function outage(part: StackPart, signal: NodeJS.Signals, whileDown: () => Promise<void>): Promise<number> {
  const restart = await stopPart(part, signal);
  const stoppedAt = Date.now();
  try {
    await whileDown();
  } finally {
    await restart();
  }
  return stoppedAt;
}
