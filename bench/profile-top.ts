// Where a process's CPU went, from a V8 CPU profile (`npm run bench -- --cpu-profile`
// writes one for the controller and one for the worker): self time by package and by
// function, and the time spent under each of ctfleet's own functions (their callees
// included), largest first.
//   node bench/profile-top.ts <file.cpuprofile> [--top N] [--from S] [--to S]
// --from and --to keep the samples of that window, in seconds from the profile's start
// (the process's launch): a burst's, without start-up or teardown.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatTable } from '../src/cli/output.ts';
import { summariseProfile, type CpuProfile } from './lib/cpu-profile.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' }, from: { type: 'string' }, to: { type: 'string' } } });
const file = positionals[0];
if (file === undefined) throw new Error('usage: node bench/profile-top.ts <file.cpuprofile> [--top N] [--from S] [--to S]');
const TOP = Number(values.top);
if (!Number.isInteger(TOP) || TOP < 1) throw new Error('--top: must be a positive integer');
const seconds = (option: 'from' | 'to', text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${option}: must be a number of seconds from the profile's start, 0 or more (got "${text}")`);
  return value * 1e6;
};
const fromUs = seconds('from', values.from);
const toUs = seconds('to', values.to);
if (fromUs !== undefined && toUs !== undefined && fromUs >= toUs) throw new Error('--from: must be below --to');

const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
const summary = summariseProfile(profile, { ...(fromUs === undefined ? {} : { fromUs }), ...(toUs === undefined ? {} : { toUs }) });
const ms = (us: number): string => (us / 1000).toFixed(0);
const share = (us: number): string => `${((us / summary.busyUs) * 100).toFixed(1)} %`;
const rows = (map: Map<string, number>): string[][] => [...map].sort(([, a], [, b]) => b - a).slice(0, TOP).map(([key, us]) => [key, ms(us), share(us)]);
const window = fromUs === undefined && toUs === undefined ? '' : `, of which ${values.from ?? '0'}–${values.to ?? 'the end'} s`;
console.log(`${file}: ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s profiled${window}, ${ms(summary.busyUs)} ms busy (not idle)\n`);
console.log(formatTable(['self time by place', 'ms', 'of busy'], rows(summary.byPlace)));
console.log();
console.log(formatTable(['self time by function', 'ms', 'of busy'], rows(summary.byFunction)));
console.log();
console.log(formatTable(["under ctfleet's own functions (callees included)", 'ms', 'of busy'], rows(summary.underOwn)));
