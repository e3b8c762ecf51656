import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync } from 'node:fs';
import { test } from 'node:test';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import Docker from 'dockerode';
import { ARTIFACTS, CtfleetProcess, containersOf, kubectl, manifest, prepareNamespace, TEST_IMAGES, type Instances } from './ctfleet.ts';
import { waitConverged } from './convergence.ts';
import { logProblems } from './logs.ts';
import { uniqueSuffix } from './stack.ts';

/**
 * One fault-injection scenario: its own namespace, Redis prefix, node names and
 * host-port block, the ctfleet processes it started, and a cleanup that leaves
 * nothing behind even when the scenario killed its processes.
 */
export class Scenario {
  readonly tag: string;
  readonly namespace: string;
  readonly env: Record<string, string>;
  readonly docker = new Docker();
  kubeConfig!: KubeConfig;
  instances!: Instances;
  private readonly processes: CtfleetProcess[] = [];
  private readonly suffix = uniqueSuffix();
  private readonly ports: [number, number];

  /** `block` picks 200 host ports of 21000–24999 for this scenario's workers. */
  constructor(tag: string, block: number, env: Record<string, string> = {}) {
    this.tag = tag;
    this.namespace = `e2e-${tag}-${this.suffix}`;
    this.ports = [21000 + block * 200, 21000 + block * 200 + 199];
    this.env = {
      CTFLEET_REDIS_PREFIX: `{ctfleet-e2e-${tag}-${this.suffix}}`,
      // Scoped to its namespace: instances of other tests are not its business.
      CTFLEET_NAMESPACES: this.namespace,
      CTFLEET_LEADER_ELECTION: 'false',
      CTFLEET_BIND_ADDRESS: '127.0.0.1',
      CTFLEET_NODE_NAME: this.node('a'),
      CTFLEET_PORT_RANGE: this.portRange(0),
      CTFLEET_SWEEP_INTERVAL_SECONDS: '5',
      CTFLEET_NODE_LOST_SECONDS: '5',
      CTFLEET_ALLOWED_IMAGES: TEST_IMAGES,
      ...env,
    };
  }

  node(letter: string): string {
    return `e2e-${this.tag}-${letter}`;
  }

  /** Half `half` (0 or 1) of the scenario's port block, for two workers. */
  portRange(half: 0 | 1 | 'all' = 'all'): string {
    const [low, high] = this.ports;
    if (half === 'all') return `${low}-${high}`;
    return half === 0 ? `${low}-${low + 99}` : `${low + 100}-${high}`;
  }

  async prepare(): Promise<void> {
    ({ kubeConfig: this.kubeConfig, instances: this.instances } = await prepareNamespace(this.namespace));
  }

  start(role: 'all' | 'controller' | 'worker' | 'api', env: Record<string, string> = {}, label: string = role): CtfleetProcess {
    const process = new CtfleetProcess(role, { ...this.env, ...env }, `${this.namespace}-${label}-${this.processes.length}`);
    this.processes.push(process);
    return process;
  }

  async apply(names: string[], spec: (name: string, index: number) => Record<string, unknown>): Promise<void> {
    const result = await kubectl(['apply', '-f', '-'], names.map((name, i) => manifest(this.namespace, name, spec(name, i))).join('\n'));
    if (result.code !== 0) throw new Error(`kubectl apply failed: ${result.stderr}`);
  }

  /** Waits for the convergence checks to pass and records how long it took since `since`. */
  async converged(what: string, since: number, timeoutMs: number): Promise<number> {
    const ms = await waitConverged(this.kubeConfig, this.docker, this.namespace, since, timeoutMs);
    const line = `${this.tag}: ${what}: converged in ${(ms / 1000).toFixed(1)} s`;
    console.log(`# ${line}`);
    mkdirSync(ARTIFACTS, { recursive: true });
    appendFileSync(join(ARTIFACTS, 'convergence.txt'), `${new Date().toISOString()} ${line}\n`);
    return ms;
  }

  /** Stops (SIGTERM) every process the scenario started so far. */
  async stopAll(): Promise<void> {
    for (const process of this.processes) await process.stop();
  }

  /** The log files of the scenario's processes. */
  logFiles(): string[] {
    return this.processes.map((process) => process.logFile);
  }

  /** Stops everything, releases the instances with a fresh ctfleet, removes what is left. */
  async cleanup(): Promise<void> {
    for (const process of this.processes) await process.stop();
    const cleaner = new CtfleetProcess('all', this.env, `${this.namespace}-cleaner`);
    await kubectl(['delete', 'challengeinstances', '--all', '-n', this.namespace, '--wait=true', '--timeout=60s']);
    // Challenges wait for their instances (a finalizer ctfleet removes): delete them while it runs.
    await kubectl(['delete', 'challenges', '--all', '-n', this.namespace, '--wait=true', '--timeout=60s']);
    await cleaner.stop();
    for (const container of await containersOf(this.docker, this.namespace)) {
      await this.docker.getContainer(container.Id).remove({ force: true }).catch(() => undefined);
    }
    await kubectl(['delete', 'namespace', this.namespace, '--wait=false']);
  }

  /**
   * Declares the scenario's last test: the logs of its processes keep the logging
   * rules (see logProblems). A test, not a check in `after`: node:test does not
   * count a failing hook as a failure, and the run would still pass.
   */
  declareLogTest(): void {
    test('its logs keep the logging rules: one JSON object a line, instance and job ids on the lines about them', (t) => {
      const files = this.processes.map((process) => process.logFile);
      // Only when the scenario's tests were filtered out (--test-name-pattern).
      if (files.length === 0) {
        t.skip('no process of this scenario ran');
        return;
      }
      const problems = files.flatMap((file) => logProblems(file).problems.map((problem) => `${file}: ${problem}`));
      assert.deepEqual(problems, []);
    });
  }
}
