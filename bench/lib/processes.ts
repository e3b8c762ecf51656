// What both benchmarks (run.ts, scale.ts) do with ctfleet's processes: start the
// compiled build as deployed, wait for /readyz, read /metrics and peak memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PRODUCTION_NODE_FLAGS } from '../../src/app/node-flags.ts';

/** A port nothing listens on now, for a process's /readyz (the tests' helper). */
export { freePort } from '../../test/support/stack.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs the compiled build with the V8 flags the bin and the image use, as deployed; `port` serves its /readyz.
 * `profileDir`: V8 writes a CPU profile of the process there when it exits (`--cpu-prof`), under a folder named for its role, to open in
 * Chrome's DevTools or read with bench/profile-top.ts.
 */
export function startProcess(role: 'controller' | 'worker', env: Record<string, string>, port: number, profileDir?: string): ChildProcess {
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const profiling = profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, role)}`];
  return spawn(process.execPath, [...PRODUCTION_NODE_FLAGS, ...profiling, join(ROOT, 'dist/main.js'), role], { env: { ...process.env, ...env, CTFLEET_HTTP_PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * Waits until /readyz on `port` answers 200: the clock of a round starts once
 * ctfleet is ready (a worker installs its firewall rules and networks first), so
 * start-up is not counted as the first instances' latency. Returns how long it took.
 */
export async function untilReady(port: number, began: number): Promise<number> {
  for (;;) {
    const status = await fetch(`http://127.0.0.1:${port}/readyz`).then((response) => response.status, () => 0);
    if (status === 200) return Date.now() - began;
    if (Date.now() - began > 120_000) throw new Error(`ctfleet on port ${port} was not ready within 120 s (last status ${status})`);
    await sleep(50);
  }
}

/**
 * Waits until a worker on `port` finished its first sweep: its start-up ends with
 * one (Docker's events connecting start it: listings, the firewall's check, the
 * node's instances), and a round whose first instance lands on it times start-up,
 * not a start, as /readyz alone once did.
 */
export async function untilSwept(port: number, launched: number, what: string): Promise<void> {
  while ((await metric(port, 'ctfleet_sweep_duration_seconds_count')) < 1) {
    if (Date.now() - launched > 120_000) throw new Error(`${what} finished no sweep within 120 s of its launch`);
    await sleep(20);
  }
}

/** A line of the process's /proc status (VmHWM: peak resident memory, VmRSS: now), MB. */
function memoryMb(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): number {
  if (pid === undefined) return Number.NaN;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN) / 1024;
}

/** Peak resident memory (VmHWM), MB. */
export function peakRssMb(pid: number | undefined): number {
  return memoryMb(pid, 'VmHWM');
}

/** Resident memory now (VmRSS), MB. */
export function rssMb(pid: number | undefined): number {
  return memoryMb(pid, 'VmRSS');
}

/** Stops a process and waits for its exit. */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve(); }));
  child.kill(signal);
  await exited;
}

/** Reads one Prometheus sample (summed over its label sets) from a process's /metrics. */
export async function metric(port: number, name: string): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((response) => response.text(), () => '');
  let sum = Number.NaN;
  for (const line of text.split('\n')) {
    const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`).exec(line);
    if (match !== null) sum = (Number.isNaN(sum) ? 0 : sum) + Number(match[1]);
  }
  return sum;
}

/** One Prometheus metric's samples from a process's /metrics, summed by the value of one label. */
export async function metricBy(port: number, name: string, label: string): Promise<Map<string, number>> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((response) => response.text(), () => '');
  const sums = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = new RegExp(`^${name}\\{([^}]*)\\} ([0-9.e+-]+)$`).exec(line);
    const key = match === null ? undefined : new RegExp(`${label}="([^"]*)"`).exec(match[1] ?? '')?.[1];
    if (match === null || key === undefined) continue;
    sums.set(key, (sums.get(key) ?? 0) + Number(match[2]));
  }
  return sums;
}

