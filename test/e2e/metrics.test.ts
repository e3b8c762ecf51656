import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import parsePrometheusTextFormat, { type Family, type Sample } from 'parse-prometheus-text-format';
import { isRunning, kubectl, webSpec } from '../support/ctfleet.ts';
import { Scenario } from '../support/scenario.ts';
import { freePort } from '../support/stack.ts';

// /metrics of a real `ctfleet all`: a Prometheus text-format parser accepts it,
// every listed series is there with values that match what happened, and no label
// or value carries an instance's name, team or env.
const SECRET = 'flag{never-in-metrics}';

describe('/metrics', () => {
  const scenario = new Scenario('metrics', 11);
  let port: number;
  let families: Map<string, Family>;
  let text: string;

  before(async () => {
    await scenario.prepare();
    port = await freePort();
    scenario.start('all', { CTFLEET_HTTP_PORT: String(port), CTFLEET_WORKER_CONCURRENCY: '4' });
    const names = ['m-alpha', 'm-bravo', 'm-charlie'];
    await scenario.apply(names, (name) => webSpec(`team-${name}`, { env: [{ name: 'FLAG', value: SECRET }] }));
    await Promise.all(names.map((name) => scenario.instances.waitFor(scenario.namespace, name, 'to run', isRunning, 90_000)));
    const deleted = await kubectl(['delete', 'challengeinstance', 'm-charlie', '-n', scenario.namespace, '--wait=true', '--timeout=60s']);
    assert.equal(deleted.code, 0, deleted.stderr);
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    text = await response.text();
    families = new Map(parsePrometheusTextFormat(text).map((family) => [family.name, family]));
  });
  after(() => scenario.cleanup());

  const samples = (name: string): Sample[] => families.get(name)?.metrics ?? [];
  const value = (name: string, labels: Record<string, string> = {}): number => {
    const sample = samples(name).find((candidate) => Object.entries(labels).every(([key, wanted]) => candidate.labels?.[key] === wanted));
    return Number(sample?.value ?? Number.NaN);
  };
  // The parser keeps a histogram's buckets but drops the labels and count of
  // labelled ones, so counts are read from the `_count` lines themselves.
  const histogramCount = (name: string, labels: Record<string, string> = {}): number => {
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}_count`) && Object.entries(labels).every(([key, wanted]) => candidate.includes(`${key}="${wanted}"`)));
    return Number(line?.split(' ').at(-1) ?? Number.NaN);
  };

  test('parses as Prometheus text format and has every listed series with its type', () => {
    const expected: [string, Family['type']][] = [
      ['ctfleet_reconcile_total', 'COUNTER'],
      ['ctfleet_reconcile_duration_seconds', 'HISTOGRAM'],
      ['ctfleet_workqueue_depth', 'GAUGE'],
      ['ctfleet_jobs_total', 'COUNTER'],
      ['ctfleet_job_duration_seconds', 'HISTOGRAM'],
      ['ctfleet_queue_jobs', 'GAUGE'],
      ['ctfleet_instances', 'GAUGE'],
      ['ctfleet_instance_time_to_ready_seconds', 'HISTOGRAM'],
      ['ctfleet_docker_operation_duration_seconds', 'HISTOGRAM'],
      ['ctfleet_worker_heartbeats_total', 'COUNTER'],
      ['ctfleet_worker_capacity', 'GAUGE'],
      ['ctfleet_worker_running_containers', 'GAUGE'],
      ['ctfleet_nodes', 'GAUGE'],
      ['ctfleet_process_resident_memory_bytes', 'GAUGE'],
    ];
    for (const [name, type] of expected) assert.equal(families.get(name)?.type, type, `${name} is a ${type}`);
  });

  test('values match what happened', () => {
    assert.equal(value('ctfleet_instances', { phase: 'Running' }), 2);
    assert.ok(value('ctfleet_jobs_total', { action: 'start', outcome: 'started' }) >= 3);
    assert.ok(value('ctfleet_jobs_total', { action: 'delete', outcome: 'removed' }) >= 1);
    assert.ok(histogramCount('ctfleet_instance_time_to_ready_seconds') >= 3, 'three fresh instances became ready');
    assert.ok(histogramCount('ctfleet_job_duration_seconds', { action: 'start', outcome: 'started' }) >= 3);
    assert.ok(histogramCount('ctfleet_reconcile_duration_seconds', { result: 'success' }) > 0);
    assert.ok(value('ctfleet_reconcile_total', { result: 'success' }) > 0);
    assert.ok(histogramCount('ctfleet_docker_operation_duration_seconds', { operation: 'create_start', result: 'success' }) >= 3);
    assert.ok(value('ctfleet_worker_heartbeats_total', { result: 'success' }) >= 1);
    assert.equal(value('ctfleet_worker_capacity'), 4);
    assert.equal(value('ctfleet_nodes', { state: 'live' }), 1);
    assert.equal(value('ctfleet_nodes', { state: 'lost' }), 0);
    assert.ok(samples('ctfleet_queue_jobs').some((sample) => sample.labels?.queue === 'start' && sample.labels.state === 'completed'));
  });

  test('labels stay bounded: no instance, team or challenge name and no env value appears', () => {
    for (const secret of ['m-alpha', 'm-bravo', 'team-m-alpha', 'web-101', SECRET, scenario.namespace]) {
      assert.ok(!text.includes(secret), `/metrics mentions ${secret}`);
    }
  });

  scenario.declareLogTest();
});
