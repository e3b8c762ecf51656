import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isRunning, kubectl, ROOT, webSpec, type CtfleetProcess } from '../support/ctfleet.ts';
import { Scenario } from '../support/scenario.ts';
import { eventually } from '../support/stack.ts';

// The admin CLI against the real stack: the counterparts of `celery inspect
// active|stats`, `purge` and a workers view, with JSON output and exit codes
// (0 ok, 2 usage, 3 nothing to act on).
describe('ctfleet CLI: instances, workers, queue', () => {
  const scenario = new Scenario('cli', 12, { CTFLEET_JOB_ATTEMPTS: '1' });
  let worker: CtfleetProcess;

  const cli = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, [join(ROOT, 'src/main.ts'), ...args], { env: { ...process.env, ...scenario.env }, timeout: 60_000 }, (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
      });
    });
  const json = async <T>(...args: string[]): Promise<T> => {
    const result = await cli(...args, '-o', 'json');
    assert.equal(result.code, 0, `ctfleet ${args.join(' ')}: ${result.stderr}`);
    return JSON.parse(result.stdout) as T;
  };

  before(async () => {
    await scenario.prepare();
    scenario.start('controller');
    worker = scenario.start('worker', { CTFLEET_WORKER_CONCURRENCY: '3' });
    await scenario.apply(['c-1', 'c-2'], (name) => webSpec(name));
    await Promise.all(['c-1', 'c-2'].map((name) => scenario.instances.waitFor(scenario.namespace, name, 'to run', isRunning, 90_000)));
  });
  after(() => scenario.cleanup());

  test('workers lists the live node with capacity and running count; exit 0', async () => {
    type Workers = { workers: { node: string; alive: boolean; capacity: number; running: number }[] };
    // The running count is as of the last heartbeat (every 5 s).
    const node = await eventually('a heartbeat counting both containers', 20_000, async () => {
      const entry = (await json<Workers>('workers')).workers.find((candidate) => candidate.node === scenario.node('a'));
      return entry !== undefined && entry.running >= 2 ? entry : undefined;
    });
    assert.deepEqual({ alive: node.alive, capacity: node.capacity }, { alive: true, capacity: 3 });
    const table = await cli('workers');
    assert.match(table.stdout, /^NODE\s+STATE\s+CAPACITY\s+RUNNING\s+VERSION\s+LAST HEARTBEAT/);
  });

  test('instances shows phase, endpoint, node and the last job\'s state', async () => {
    const { instances } = await json<{ instances: { name: string; phase: string; endpoints: { url: string }[]; node: string; lastJob: { action: string; state: string } | null }[] }>('instances', '-n', scenario.namespace);
    assert.deepEqual(instances.map((row) => [row.name, row.phase, row.node, row.lastJob?.action, row.lastJob?.state]).sort(), [
      ['c-1', 'Running', scenario.node('a'), 'start', 'completed'],
      ['c-2', 'Running', scenario.node('a'), 'start', 'completed'],
    ]);
    assert.ok(instances.every((row) => row.endpoints[0]?.url.startsWith('http://127.0.0.1:') === true));
    const table = await cli('instances', '-n', scenario.namespace);
    assert.match(table.stdout, /^NAMESPACE\s+NAME\s+TEAM\s+CHALLENGE\s+PHASE\s+ENDPOINT\s+NODE\s+JOB\s+AGE/);
  });

  test('queue stats, failed and retry: a failed job is listed with its reason and can be retried; unknown ids exit 3', async () => {
    await scenario.apply(['c-bad'], () => webSpec('c-bad', { image: 'ctfleet-test/absent:1' }));
    await scenario.instances.waitFor(scenario.namespace, 'c-bad', 'to fail', (instance) => instance.status?.phase === 'Failed', 60_000);
    const { jobs } = await json<{ jobs: { id: string; action: string; instance: string; failedReason?: string }[] }>('queue', 'failed');
    const failed = jobs.find((job) => job.instance === `${scenario.namespace}/c-bad`);
    assert.match(failed?.failedReason ?? '', /^ImageNotPresent: /);
    const { queues } = await json<{ queues: { queue: string; counts: Record<string, number> }[] }>('queue', 'stats');
    const start = queues.find((entry) => entry.queue === 'start');
    assert.ok((start?.counts.completed ?? 0) >= 2 && (start?.counts.failed ?? 0) >= 1, JSON.stringify(start));
    const retried = await cli('queue', 'retry', failed?.id ?? '');
    assert.equal(retried.code, 0, retried.stderr);
    assert.match(retried.stdout, /Retried 1 job/);
    assert.equal((await cli('queue', 'retry', 'no-such-job')).code, 3);
    assert.equal((await cli('queue', 'retry')).code, 2);
  });

  test('purge asks first, removes only waiting jobs, never touches Kubernetes; the controller queues them again', async () => {
    assert.equal(await worker.stop(), 0);
    assert.equal((await cli('workers')).code, 3, 'no worker alive');
    await scenario.apply(['p-1', 'p-2', 'p-3'], (name) => webSpec(name));
    const waitingJobs = async (): Promise<{ instance: string; createdAt: string }[]> => (await json<{ jobs: { instance: string; createdAt: string }[] }>('queue', 'waiting')).jobs.filter((job) => job.instance.startsWith(`${scenario.namespace}/p-`));
    const waiting = async (): Promise<number> => (await waitingJobs()).length;
    await eventually('three start jobs waiting', 30_000, async () => ((await waiting()) === 3 ? true : undefined));

    const refused = await cli('queue', 'purge');
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /not confirmed/);
    assert.equal(await waiting(), 3, 'nothing was removed without confirmation');

    const purgedAt = Date.now();
    const purged = await cli('queue', 'purge', '--yes');
    assert.equal(purged.code, 0, purged.stderr);
    assert.match(purged.stdout, /^Removed [3-9]\d* waiting or delayed job/);
    // The controller (still running) notices the missing jobs and queues them anew:
    // every waiting job is younger than the purge.
    await eventually('the controller to queue the three jobs again', 30_000, async () => {
      const jobs = await waitingJobs();
      return jobs.length === 3 && jobs.every((job) => Date.parse(job.createdAt) >= purgedAt) ? true : undefined;
    });
    const left = await kubectl(['get', 'challengeinstances', '-n', scenario.namespace, '-o', 'name']);
    assert.equal(left.stdout.split('\n').filter((line) => line.includes('/p-')).length, 3, 'the resources are untouched');

    scenario.start('worker', { CTFLEET_WORKER_CONCURRENCY: '3' });
    await Promise.all(['p-1', 'p-2', 'p-3'].map((name) => scenario.instances.waitFor(scenario.namespace, name, 'to run after the purge', isRunning, 60_000)));
  });

  test('bad usage exits 2 with the reason', async () => {
    const unknown = await cli('queue', 'bogus');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown subcommand "bogus"/);
    const format = await cli('workers', '-o', 'yaml');
    assert.equal(format.code, 2);
    assert.match(format.stderr, /--output: must be "table" or "json"/);
  });

  scenario.declareLogTest();
});
