// Where a round's CPU goes: every process's user + system time from /proc, grouped
// by what it is (dockerd, the API server, ctfleet's controller, …), between two
// snapshots. On a 2-core machine every component takes CPU from dockerd, so a
// start's cost is the sum over all of them, not its own process's alone.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface ProcessTime {
  group: string;
  ticks: number;
}

export interface CpuSnapshot {
  at: number;
  /** The machine's busy ticks (all cores, idle and iowait excluded). */
  busyTicks: number;
  /** The same, by CPU (cpu0, cpu1, …). */
  busyTicksByCpu: number[];
  byPid: Map<number, ProcessTime>;
}

/** What a process is, by its command name (or its pid, for ctfleet's own node processes). */
function groupOf(comm: string, pid: number, named: ReadonlyMap<number, string>): string {
  const role = named.get(pid);
  if (role !== undefined) return role;
  if (comm.startsWith('containerd-shim')) return 'containerd-shim';
  if (['dockerd', 'containerd', 'kube-apiserver', 'etcd', 'redis-server', 'runc', 'iptables', 'docker-proxy', 'docker-init', 'kubelet', 'kube-proxy', 'kube-controller', 'kube-scheduler', 'httpd'].includes(comm)) return comm;
  if (comm === 'node' || comm === 'MainThread') return 'other node';
  return 'other';
}

/** User + system ticks of every process now; the children a process reaped count as its own (dockerd's iptables). */
export function cpuSnapshot(named: ReadonlyMap<number, string> = new Map()): CpuSnapshot {
  const byPid = new Map<number, ProcessTime>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // it exited while listed
    }
    // `pid (comm) state …`: comm may hold spaces and parentheses; the last ')' ends it.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    // Fields 14–17 of stat (utime, stime, cutime, cstime) are 12–15 here.
    const ticks = [11, 12, 13, 14].reduce((sum, index) => sum + Number(fields[index] ?? 0), 0);
    const pid = Number(entry);
    byPid.set(pid, { group: groupOf(comm, pid, named), ticks });
  }
  // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
  const busy = (line: string): number => line.trim().split(/\s+/).slice(1).map(Number).reduce((sum, value, index) => (index === 3 || index === 4 ? sum : sum + value), 0);
  const lines = readFileSync('/proc/stat', 'utf8').split('\n');
  const busyTicks = busy(lines[0] ?? '');
  const busyTicksByCpu = lines.filter((line) => /^cpu\d+ /.test(line)).map(busy);
  return { at: Date.now(), busyTicks, busyTicksByCpu, byPid };
}

export interface CpuUse {
  wallSeconds: number;
  /** CPU seconds the machine was busy (all cores). */
  busySeconds: number;
  /** …by CPU (cpu0, cpu1, …). */
  busySecondsByCpu: number[];
  /** CPU seconds by group; `unaccounted` is what processes that exited in between used (containers' shims, runc, the containers themselves). */
  byGroup: Record<string, number>;
}

/** CPU seconds used between two snapshots, by group. */
export function cpuUsed(before: CpuSnapshot, after: CpuSnapshot): CpuUse {
  const byGroup: Record<string, number> = {};
  let accounted = 0;
  for (const [pid, now] of after.byPid) {
    const then = before.byPid.get(pid);
    const seconds = (now.ticks - (then?.ticks ?? 0)) / TICKS_PER_SECOND;
    if (seconds <= 0) continue;
    byGroup[now.group] = (byGroup[now.group] ?? 0) + seconds;
    accounted += seconds;
  }
  const busySeconds = (after.busyTicks - before.busyTicks) / TICKS_PER_SECOND;
  byGroup.unaccounted = Math.max(0, busySeconds - accounted);
  const busySecondsByCpu = after.busyTicksByCpu.map((ticks, cpu) => (ticks - (before.busyTicksByCpu[cpu] ?? 0)) / TICKS_PER_SECOND);
  return { wallSeconds: (after.at - before.at) / 1000, busySeconds, busySecondsByCpu, byGroup };
}

/** One line: the groups by CPU seconds, largest first; with `nodeCpus`, also what those CPUs (a dedicated Docker node's) were busy. */
export function formatCpu(use: CpuUse, starts: number, nodeCpus?: readonly number[]): string {
  const groups = Object.entries(use.byGroup).filter(([, seconds]) => seconds >= 0.05).sort(([, a], [, b]) => b - a);
  const perStart = (seconds: number): string => `${((seconds * 1000) / starts).toFixed(0)} ms a start`;
  const node = nodeCpus === undefined ? 0 : nodeCpus.reduce((sum, cpu) => sum + (use.busySecondsByCpu[cpu] ?? 0), 0);
  const nodeText = nodeCpus === undefined ? '' : `; the node's CPU ${nodeCpus.join(',')} ${node.toFixed(1)} s (${perStart(node)}), the rest ${(use.busySeconds - node).toFixed(1)} s (${perStart(use.busySeconds - node)})`;
  return `${use.busySeconds.toFixed(1)} CPU s busy in ${use.wallSeconds.toFixed(1)} s (${perStart(use.busySeconds)})${nodeText}: ${groups.map(([group, seconds]) => `${group} ${seconds.toFixed(1)}`).join(', ')}`;
}
