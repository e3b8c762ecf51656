import { createInterface } from 'node:readline/promises';
import { KubeChallengeSource } from '../adapters/kubernetes/challenge-source.ts';
import { KubeInstanceApi } from '../adapters/kubernetes/instance-api.ts';
import { loadKubeConfig } from '../adapters/kubernetes/kube-config.ts';
import { QueueAdmin, type JobSummary } from '../adapters/queue/queue-admin.ts';
import { RedisHeartbeatStore } from '../adapters/redis/heartbeat-store.ts';
import { createRedisConnection } from '../adapters/redis/redis-connection.ts';
import type { ConnectionConfig } from '../config/config.ts';
import { summariseChallenges } from '../domain/challenge-view.ts';
import { viewOf } from '../domain/instance-view.ts';
import { formatChallengeTable, formatTable, UsageError, type OutputFormat } from './output.ts';
import { shortDuration } from '../domain/durations.ts';

/**
 * Exit codes of the admin commands: 0 done; 1 a dependency failed (Redis or the
 * API server); 2 usage (including a purge without confirmation); 3 nothing to act
 * on or nothing alive (no live worker, no such failed job).
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, nothing: 3 } as const;

type Print = (text: string) => void;
const print: Print = (text) => {
  process.stdout.write(`${text}\n`);
};

async function withRedis<T>(config: ConnectionConfig, work: (admin: QueueAdmin, heartbeats: RedisHeartbeatStore) => Promise<T>): Promise<T> {
  const redis = createRedisConnection(config.redis, 'command');
  const admin = new QueueAdmin(redis, config.redis.prefix);
  try {
    return await work(admin, new RedisHeartbeatStore(redis, config.redis.prefix));
  } finally {
    await admin.close().catch(() => undefined);
    redis.disconnect();
  }
}

function age(fromMs: number, nowMs: number): string {
  return shortDuration(nowMs - fromMs);
}

/** `ctfleet workers`: node, capacity, running, version, last heartbeat. Exit 3 when none is alive. */
export async function runWorkers(config: ConnectionConfig, format: OutputFormat): Promise<number> {
  return withRedis(config, async (_admin, heartbeats) => {
    const now = Date.now();
    const workers = (await heartbeats.listWorkers()).map(({ node, lastBeatMs, beat }) => ({
      node,
      alive: beat !== undefined,
      capacity: beat?.capacity ?? null,
      running: beat?.running ?? null,
      version: beat?.version ?? null,
      startedAt: beat?.startedAt ?? null,
      lastHeartbeat: new Date(lastBeatMs).toISOString(),
    }));
    if (format === 'json') print(JSON.stringify({ workers }, null, 2));
    else {
      print(formatTable(
        ['node', 'state', 'capacity', 'running', 'version', 'last heartbeat'],
        workers.map((worker) => [worker.node, worker.alive ? 'alive' : 'gone', String(worker.capacity ?? '-'), String(worker.running ?? '-'), worker.version ?? '-', `${age(Date.parse(worker.lastHeartbeat), now)} ago`]),
      ));
    }
    return workers.some((worker) => worker.alive) ? EXIT.ok : EXIT.nothing;
  });
}

function jobRows(jobs: readonly JobSummary[], now: number): string[][] {
  return jobs.map((job) => [job.id, job.queue, job.action, job.instance, job.state, String(job.attempts), job.progress, age(Date.parse(job.createdAt), now), job.failedReason ?? '']);
}

/** `ctfleet queue stats|active|waiting|failed|retry|purge`. */
export async function runQueue(config: ConnectionConfig, args: readonly string[], format: OutputFormat): Promise<number> {
  const [sub, ...rest] = args.filter((arg, i, all) => !(arg === '-o' || arg === '--output' || arg.startsWith('--output=') || all[i - 1] === '-o' || all[i - 1] === '--output'));
  switch (sub) {
    case 'stats':
      return withRedis(config, async (admin) => {
        const stats = await admin.stats();
        if (format === 'json') print(JSON.stringify({ queues: stats }, null, 2));
        else print(formatTable(['queue', 'waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'], stats.map(({ queue, counts }) => [queue, ...['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'].map((state) => String(counts[state] ?? 0))])));
        return EXIT.ok;
      });
    case 'active':
    case 'waiting':
    case 'failed':
      return withRedis(config, async (admin) => {
        const jobs = await admin.list(sub, 500);
        if (format === 'json') print(JSON.stringify({ jobs }, null, 2));
        else print(formatTable(['job', 'queue', 'action', 'instance', 'state', 'attempts', 'progress', 'age', 'reason'], jobRows(jobs, Date.now())));
        return EXIT.ok;
      });
    case 'retry': {
      const all = rest.includes('--all');
      const ids = rest.filter((arg) => !arg.startsWith('-'));
      if (!all && ids.length === 0) throw new UsageError('queue retry: name the failed job ids to retry, or --all');
      return withRedis(config, async (admin) => {
        const retried = await admin.retryFailed(all ? [] : ids);
        if (format === 'json') print(JSON.stringify({ retried }, null, 2));
        else print(retried.length === 0 ? 'No matching failed job.' : `Retried ${retried.length} job${retried.length === 1 ? '' : 's'}: ${retried.join(', ')}`);
        return retried.length === 0 ? EXIT.nothing : EXIT.ok;
      });
    }
    case 'purge': {
      if (!rest.includes('--yes') && !(await confirm(`Remove every waiting and delayed job under prefix ${config.redis.prefix}? Resources in Kubernetes are not touched; the controller queues again what is still needed. [y/N] `))) {
        throw new UsageError('queue purge: not confirmed (answer y, or pass --yes)');
      }
      return withRedis(config, async (admin) => {
        const removed = await admin.purge();
        if (format === 'json') print(JSON.stringify({ removed }, null, 2));
        else print(`Removed ${removed} waiting or delayed job${removed === 1 ? '' : 's'}; the controller re-queues what instances still need.`);
        return EXIT.ok;
      });
    }
    default:
      throw new UsageError(sub === undefined ? 'queue: name a subcommand (stats, active, waiting, failed, retry, purge)' : `queue: unknown subcommand "${sub}"`);
  }
}

/** Asks on the terminal; without one, nothing is confirmed. */
async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await prompt.question(question)).trim());
  } finally {
    prompt.close();
  }
}

/** The namespace of `-n NAMESPACE` / `--namespace NAMESPACE`; undefined without one (every namespace). */
function namespaceOf(command: string, args: readonly string[]): string | undefined {
  const flag = args.findIndex((arg) => arg === '-n' || arg === '--namespace');
  const namespace = flag === -1 ? undefined : args[flag + 1];
  if (flag !== -1 && (namespace === undefined || namespace.startsWith('-'))) throw new UsageError(`${command}: -n needs a namespace`);
  return namespace;
}

/** `ctfleet instances [-n NAMESPACE]`: like `kubectl get chi` plus the state of each instance's last job. */
export async function runInstances(config: ConnectionConfig, args: readonly string[], format: OutputFormat): Promise<number> {
  const namespace = namespaceOf('instances', args);
  const api = new KubeInstanceApi(loadKubeConfig(config.kubeconfigPath));
  const instances = await api.list(namespace === undefined ? [] : [namespace]);
  return withRedis(config, async (admin) => {
    const now = Date.now();
    const rows = await Promise.all(instances.map(async (instance) => {
      const job = instance.status?.lastJob;
      const lastJob = job === undefined ? null : { id: job.id, action: job.action, queue: job.queue ?? 'start', state: await admin.jobState(job.queue ?? 'start', job.id) };
      return { ...viewOf(instance), lastJob };
    }));
    if (format === 'json') print(JSON.stringify({ instances: rows }, null, 2));
    else {
      print(formatTable(
        ['namespace', 'name', 'team', 'challenge', 'phase', 'endpoint', 'node', 'job', 'age'],
        rows.map((row) => [row.namespace, row.name, row.team, row.challenge, row.phase, row.endpoints[0]?.url ?? '', row.node ?? '', row.lastJob === null ? '-' : `${row.lastJob.action}:${row.lastJob.state}`, row.createdAt === null ? '' : age(Date.parse(row.createdAt), now)]),
      ));
    }
    return EXIT.ok;
  });
}

/**
 * `ctfleet challenges [-n NAMESPACE]`: each Challenge with its image, flag kind and
 * delivery, and its instances counted per phase (instances naming no Challenge
 * get a row of their own); from the API server alone. Exit 0, also when there is
 * nothing to list.
 */
export async function runChallenges(config: ConnectionConfig, args: readonly string[], format: OutputFormat): Promise<number> {
  const namespace = namespaceOf('challenges', args);
  const namespaces = namespace === undefined ? [] : [namespace];
  const kubeConfig = loadKubeConfig(config.kubeconfigPath);
  const [challenges, instances] = await Promise.all([new KubeChallengeSource(kubeConfig).list(namespaces), new KubeInstanceApi(kubeConfig).list(namespaces)]);
  const views = summariseChallenges(challenges, instances.map(viewOf));
  if (format === 'json') print(JSON.stringify({ challenges: views }, null, 2));
  else print(views.length === 0 ? `No Challenges${namespace === undefined ? '' : ` in namespace ${namespace}`}.` : formatChallengeTable(views, Date.now()));
  return EXIT.ok;
}
