// Reads a V8 CPU profile (`node --cpu-prof`, Chrome DevTools' format): where a
// process's time went, by package and by function, within a window of its life.
// bench/profile-top.ts prints it; `npm run bench -- --cpu-profile` writes profiles.

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

export interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  /** The node each sample was taken in. */
  samples: number[];
  /** Microseconds from the previous sample (the first: from `startTime`). */
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  /** Microseconds sampled outside `(idle)`. */
  busyUs: number;
  /** Self time by where the code lives: a package, `node`, `ctfleet <folder>`, or V8's own frames. */
  byPlace: Map<string, number>;
  /** Self time by function (`name file:line`). */
  byFunction: Map<string, number>;
  /** Time under each of ctfleet's own functions, callees included, counted once per sample. */
  underOwn: Map<string, number>;
}

/** A package under node_modules, `node` for Node's own code, `ctfleet <folder>` for dist/ or src/, or V8's pseudo-frames ((garbage collector), (program)). */
export function placeOf(frame: CallFrame): string {
  if (frame.url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(frame.url);
  if (pkg?.[1] !== undefined) return pkg[1];
  if (frame.url.startsWith('node:')) return 'node';
  const own = /\/(?:dist|src)\/([^/]+)\//.exec(frame.url);
  return own?.[1] === undefined ? frame.url : `ctfleet ${own[1]}`;
}

function nameOf(frame: CallFrame): string {
  return `${frame.functionName === '' ? '(anonymous)' : frame.functionName} ${frame.url.replace(/^.*\/(node_modules|dist|src)\//, '$1/')}:${String(frame.lineNumber + 1)}`;
}

function isOwn(frame: CallFrame): boolean {
  return /\/(dist|src)\//.test(frame.url) && !frame.url.includes('node_modules');
}

function add(map: Map<string, number>, key: string, us: number): void {
  map.set(key, (map.get(key) ?? 0) + us);
}

/** Sums the samples taken from `fromUs` to `toUs` after the profile's start (default: all of them). */
export function summariseProfile(profile: CpuProfile, window: { fromUs?: number; toUs?: number } = {}): ProfileSummary {
  const fromUs = window.fromUs ?? 0;
  const toUs = window.toUs ?? Number.POSITIVE_INFINITY;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const self = new Map<number, number>();
  let at = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (at >= fromUs && at < toUs) self.set(id, (self.get(id) ?? 0) + delta);
  });
  const summary: ProfileSummary = { busyUs: 0, byPlace: new Map(), byFunction: new Map(), underOwn: new Map() };
  for (const [id, us] of self) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined || frame.functionName === '(idle)') continue;
    summary.busyUs += us;
    add(summary.byPlace, placeOf(frame), us);
    add(summary.byFunction, nameOf(frame), us);
    const counted = new Set<string>();
    for (let node: number | undefined = id; node !== undefined; node = parentOf.get(node)) {
      const caller = byId.get(node)?.callFrame;
      if (caller === undefined || !isOwn(caller)) continue;
      const name = nameOf(caller);
      if (!counted.has(name)) add(summary.underOwn, name, us);
      counted.add(name);
    }
  }
  return summary;
}
