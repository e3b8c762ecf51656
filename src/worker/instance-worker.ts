import { createHash } from 'node:crypto';
import type { ContainerInfo, ContainerRuntime, PortBinding } from '../adapters/docker/container-runtime.ts';
import { findCondition, type ChallengeInstance, type Condition, type Endpoint, type InstanceSpec, type InstanceStatus } from '../domain/challenge-instance.ts';
import { kubeTime, mergeCondition } from '../domain/conditions.ts';
import { CtfleetError, isNotFound, permanent } from '../domain/errors.ts';
import { parseJob, type InstanceJob, type JobTarget } from '../domain/jobs.ts';
import { containerName, FIELD_MANAGERS, LABELS } from '../domain/names.ts';
import type { InstanceApi } from '../domain/ports.ts';
import { isPermanentReason, READY_REASONS } from '../domain/reasons.ts';
import type { Logger } from '../observability/logger.ts';
import type { PortAllocator } from './port-allocator.ts';
import { toBytes, toNanoCpus } from './quantities.ts';
import { canConnect } from './readiness.ts';

export interface WorkerSettings {
  node: string;
  /** Host written into endpoints: where teams reach this node. */
  advertiseAddress: string;
  /** Host address Docker publishes ports on. */
  bindAddress: string;
  readinessTimeoutMs: number;
}

/** What the worker last saw of an instance, kept in Redis for fast reads (CLI, dashboards). */
export interface ObservedState {
  namespace: string;
  name: string;
  node: string;
  state: 'running' | 'stopped' | 'removed' | 'failed';
  reason: string;
  containerId?: string;
  endpoints?: Endpoint[];
  generation: number;
}

export interface ObservedStateStore {
  record(uid: string, state: ObservedState): Promise<void>;
}

/** The slice of a BullMQ job the handler uses. */
export interface JobContext {
  id: string;
  progress(percent: number, step: string): Promise<void>;
}

export interface JobOutcome {
  outcome: 'started' | 'adopted' | 'stopped' | 'removed' | 'skipped';
  reason?: string;
  containerId?: string;
  endpoints?: Endpoint[];
}

const PORT_LISTING_TTL_MS = 10_000;
/** Longer than any sweep grace: after this, when a uid was last worked on no longer matters. */
const FORGET_TOUCHED_MS = 120_000;

/** JSON with object keys sorted at every level: the same value always gives the same text. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, item]) => item !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Hash of everything that shapes the container; a change means replace it.
 * Canonical, so a spec read from the API server (keys sorted) and one parsed from
 * a job payload (keys in schema order) hash alike.
 */
export function specHash(spec: InstanceSpec): string {
  const shape = {
    image: spec.image,
    ports: spec.ports,
    env: spec.env ?? [],
    command: spec.command ?? [],
    args: spec.args ?? [],
    resources: spec.resources ?? {},
  };
  return createHash('sha256').update(canonicalJson(shape)).digest('hex').slice(0, 16);
}

export function endpointUrl(name: string, protocol: string, host: string, port: number): string {
  const scheme = protocol === 'UDP' ? 'udp' : name.startsWith('https') ? 'https' : name.startsWith('http') ? 'http' : 'tcp';
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Carries out one job on this node's Docker engine, then reports what runs to the
 * resource's status (as field manager ctfleet-worker) and to Redis.
 *
 * Guarantees: every action is idempotent. The container name is deterministic and
 * labelled with the instance uid and spec hash, so a repeated start adopts what is
 * already there, and stop/delete of something gone succeed.
 */
export class InstanceWorker {
  private readonly runtime: ContainerRuntime;
  private readonly api: InstanceApi;
  private readonly observed: ObservedStateStore;
  private readonly ports: PortAllocator;
  private readonly settings: WorkerSettings;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private portListing: { at: number; ports: Set<number> } | undefined;
  /** Per-uid chain: jobs and repairs of one instance never overlap. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** When work on a uid last ended, so a sweep leaves fresh work alone. */
  private readonly lastTouched = new Map<string, number>();
  /** Containers ctfleet itself is stopping or removing: their exits are not crashes. */
  private readonly expectedExits = new Set<string>();
  /** Containers the engine refused to start once (a second refusal replaces them). */
  private readonly refusedStarts = new Set<string>();

  constructor(deps: {
    runtime: ContainerRuntime;
    api: InstanceApi;
    observed: ObservedStateStore;
    ports: PortAllocator;
    settings: WorkerSettings;
    logger: Logger;
    now?: () => Date;
  }) {
    this.runtime = deps.runtime;
    this.api = deps.api;
    this.observed = deps.observed;
    this.ports = deps.ports;
    this.settings = deps.settings;
    this.logger = deps.logger;
    this.now = deps.now ?? (() => new Date());
  }

  async handle(data: unknown, context: JobContext): Promise<JobOutcome> {
    const parsed = parseJob(data);
    if (!parsed.ok) throw permanent('InvalidJob', `Refused a malformed job payload: ${parsed.problems}`);
    const job = parsed.job;
    return this.exclusive(job.target.uid, () => this.run(job, context));
  }

  /** Runs `work` once no other job or repair of this uid runs. */
  async exclusive<T>(uid: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(uid) ?? Promise.resolve();
    const current = previous.catch(() => undefined).then(work);
    const settled = current.catch(() => undefined);
    this.locks.set(uid, settled);
    try {
      return await current;
    } finally {
      this.lastTouched.set(uid, Date.now());
      if (this.locks.get(uid) === settled) this.locks.delete(uid);
    }
  }

  /** A job or repair of this uid runs, or ended less than `graceMs` ago. */
  isBusy(uid: string, graceMs: number): boolean {
    if (this.locks.has(uid)) return true;
    const touched = this.lastTouched.get(uid);
    if (touched === undefined) return false;
    const age = Date.now() - touched;
    if (age >= FORGET_TOUCHED_MS) this.lastTouched.delete(uid);
    return age < graceMs;
  }

  /**
   * True when ctfleet itself stopped or removed this container lately. Kept for a
   * minute, not consumed: one removal brings both a `die` and a `destroy` event.
   */
  isExpectedExit(containerId: string): boolean {
    return this.expectedExits.has(containerId);
  }

  private async stopContainer(id: string): Promise<void> {
    this.expectExit(id);
    await this.runtime.stop(id);
  }

  private async removeContainer(id: string): Promise<void> {
    this.expectExit(id);
    await this.runtime.remove(id);
  }

  private expectExit(id: string): void {
    this.expectedExits.add(id);
    // Its events come within a second; a minute later the id is forgotten.
    setTimeout(() => this.expectedExits.delete(id), 60_000).unref();
  }

  private async run(job: InstanceJob, context: JobContext): Promise<JobOutcome> {
    const log = this.logger.child({ job: context.id, action: job.action, instance: `${job.target.namespace}/${job.target.name}`, uid: job.target.uid });
    // A delete needs nothing from the API: the controller learns of it from the job.
    if (job.action === 'delete') return this.remove(job.target, log);
    const current = await this.api.get(job.target.namespace, job.target.name);
    const instance = current?.metadata.uid === job.target.uid ? current : undefined;
    switch (job.action) {
      case 'start':
        return this.start(job, instance, context, log);
      case 'stop':
        return this.stop(job.target, instance, log);
      case 'expire':
        return this.expire(job.target, instance, log);
    }
  }

  /**
   * Brings back the container of an instance that was running here: starts it
   * again, or re-creates it (on its old host ports when they are free) when it is
   * gone. Reads the instance afresh and does nothing unless it still wants to run
   * here at the same generation. A container that exits again before it is ready
   * fails with ContainerExited, without marking the instance Failed: the caller's
   * restart policy decides.
   */
  async revive(namespace: string, name: string, uid: string, generation: number): Promise<JobOutcome> {
    return this.exclusive(uid, async () => {
      const instance = await this.api.get(namespace, name);
      const log = this.logger.child({ action: 'revive', instance: `${namespace}/${name}`, uid });
      if (instance === undefined || instance.metadata.uid !== uid) return skipped('InstanceGone', log);
      const { metadata, spec, status } = instance;
      if (metadata.generation !== generation || metadata.deletionTimestamp !== undefined || spec.desiredState !== 'Running' || status?.node !== this.settings.node || status.phase === 'Expired') {
        return skipped('NoLongerWanted', log);
      }
      const job: InstanceJob = { v: 1, action: 'start', target: { namespace, name, uid, generation }, spec };
      const preferred = (status.endpoints ?? []).map((endpoint) => endpoint.port);
      // Its own ports: free them from the allocator's recent-use grace, and list
      // afresh so the listing does not count the container that is gone.
      this.ports.release(preferred);
      this.portListing = undefined;
      return this.start(job, instance, { id: `revive.${uid}`, progress: () => Promise.resolve() }, log, { preferred, reportFailures: false });
    });
  }

  /** Reports (status and Warning event) that the container exited behind ctfleet's back and is being restarted. */
  async reportRestarting(instance: ChallengeInstance, message: string): Promise<void> {
    await this.reportReady(instance, READY_REASONS.restarting, message, 'failed');
    this.warn(instance, READY_REASONS.restarting, message);
  }

  /** Reports (status and Warning event) that the container exited more often than the restart policy allows. */
  async reportCrashLoop(instance: ChallengeInstance, message: string): Promise<void> {
    await this.reportReady(instance, READY_REASONS.crashLoop, message, 'failed');
    this.warn(instance, READY_REASONS.crashLoop, message);
  }

  /** A Warning event from the worker: best effort, off the critical path. */
  private warn(instance: ChallengeInstance, reason: string, message: string): void {
    void this.api.recordEvent(instance, { type: 'Warning', reason, message }, 'worker').catch((error: unknown) => {
      this.logger.warn({ err: error, reason, instance: `${instance.metadata.namespace}/${instance.metadata.name}`, uid: instance.metadata.uid }, 'Recording an event failed');
    });
  }

  /** Refreshes the observed state in Redis of a container that runs as it should (it may have lost its keys). */
  async recordHealthy(instance: ChallengeInstance, container: ContainerInfo): Promise<void> {
    const { namespace, name, uid, generation } = instance.metadata;
    const observed: ObservedState = { namespace, name, node: this.settings.node, state: 'running', reason: READY_REASONS.ready, containerId: container.id, generation };
    if (instance.status?.endpoints !== undefined) observed.endpoints = instance.status.endpoints;
    await this.observed.record(uid, observed);
  }

  /** Removes an orphan container (no instance wants it here). */
  async removeOrphan(container: ContainerInfo): Promise<void> {
    await this.removeContainer(container.id);
  }

  /** Stops a container whose instance asks to be stopped. */
  async stopUnwanted(container: ContainerInfo): Promise<void> {
    await this.stopContainer(container.id);
  }

  private async reportReady(instance: ChallengeInstance, reason: string, message: string, state: ObservedState['state']): Promise<void> {
    const { namespace, name, uid, generation } = instance.metadata;
    await this.api.applyStatus(instance, FIELD_MANAGERS.worker, {
      node: this.settings.node,
      ...(instance.status?.containerId === undefined ? {} : { containerId: instance.status.containerId }),
      ...(instance.status?.endpoints === undefined ? {} : { endpoints: instance.status.endpoints }),
      ...(instance.status?.startedAt === undefined ? {} : { startedAt: instance.status.startedAt }),
      conditions: [this.readyFalse(instance, reason, message, generation)],
    });
    await this.observed.record(uid, { namespace, name, node: this.settings.node, state, reason, generation });
  }

  private async start(
    job: InstanceJob,
    instance: ChallengeInstance | undefined,
    context: JobContext,
    log: Logger,
    options: { preferred: number[]; reportFailures: boolean } = { preferred: [], reportFailures: true },
  ): Promise<JobOutcome> {
    const { target } = job;
    const spec = job.spec as InstanceSpec;
    // Gone or going: an earlier attempt of this job may have left a container.
    if (instance === undefined || instance.metadata.deletionTimestamp !== undefined) {
      await this.remove(target, log);
      return skipped(instance === undefined ? 'InstanceGone' : 'InstanceDeleting', log);
    }
    if (instance.metadata.generation > target.generation) return skipped('Superseded', log);

    try {
      const name = containerName(target.namespace, target.name);
      const hash = specHash(spec);
      await context.progress(20, 'pulling image');
      await this.runtime.ensureImage(spec.image, spec.imagePullPolicy);
      await context.progress(40, 'creating container');
      // Create first: the name is deterministic, so an existing container shows up
      // as a name conflict, and only then is it inspected (one Docker call saved
      // on every fresh start).
      try {
        const container = await this.createWithPorts(job, name, hash, options.preferred);
        await context.progress(60, 'started');
        return await this.becomeReady(job, instance, container, context, log, 'started');
      } catch (error) {
        if (!(error instanceof CtfleetError) || error.code !== 'NameInUse') throw error;
      }
      const existing = await this.runtime.find(name);
      let preferredPorts: number[] = [];
      if (existing !== undefined) {
        const ours = existing.labels[LABELS.uid] === target.uid;
        if (ours) preferredPorts = existing.hostPorts;
        if (ours && existing.labels[LABELS.specHash] === hash) {
          // startAgain false: the engine would not start it, and it was removed.
          if (existing.running || (await this.startAgain(existing.id, log))) {
            await context.progress(60, 'started');
            return await this.becomeReady(job, instance, existing, context, log, existing.running ? 'adopted' : 'started');
          }
        } else {
          await this.removeContainer(existing.id);
          log.info({ container: existing.id }, `Removed outdated container ${name}`);
        }
      }
      const container = await this.createWithPorts(job, name, hash, preferredPorts);
      await context.progress(60, 'started');
      return await this.becomeReady(job, instance, container, context, log, 'started');
    } catch (error) {
      const expectedByCaller = !options.reportFailures && error instanceof CtfleetError && error.code === 'ContainerExited';
      if (error instanceof CtfleetError && isPermanentReason(error.code) && !expectedByCaller) {
        await this.reportFailure(target, instance, error).catch((reportError: unknown) => {
          log.warn({ err: reportError }, 'Reporting a failure to the resource failed');
        });
      }
      throw error;
    }
  }

  /**
   * Starts a stopped container again; true when it started. An engine stopped
   * mid-start can leave a container that never starts again ("failed to start
   * shim … file exists"): when the engine answers but refuses to start the same
   * container a second time in a row, it is removed and false says to make a new
   * one. A first refusal is thrown, to be retried: an engine on its way down
   * refuses too, and its containers are fine once it is back.
   */
  private async startAgain(id: string, log: Logger): Promise<boolean> {
    // Started again: its next exit is news, whoever stopped it last time.
    this.expectedExits.delete(id);
    try {
      await this.runtime.start(id);
      this.refusedStarts.delete(id);
      return true;
    } catch (error) {
      // Unreachable engine (it cannot inspect the container either): retry later.
      if ((await this.runtime.find(id).catch(() => undefined)) === undefined) throw error;
      if (!this.refusedStarts.has(id)) {
        this.refusedStarts.add(id);
        throw error;
      }
      this.refusedStarts.delete(id);
      log.warn({ container: id, err: error }, 'The engine refused to start the container twice; replacing it');
      await this.removeContainer(id);
      return false;
    }
  }

  /** Allocates host ports and creates the container, trying fresh ports if Docker finds one taken. */
  private async createWithPorts(job: InstanceJob, name: string, hash: string, preferred: number[]): Promise<ContainerInfo> {
    const { target } = job;
    const spec = job.spec as InstanceSpec;
    const inUse = await this.portsInUse();
    let lastConflict: CtfleetError | undefined;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const hostPorts = this.ports.allocate(spec.ports.length, inUse, attempt === 0 ? preferred : []);
      if (hostPorts === undefined) {
        if (lastConflict !== undefined) throw permanent('PortConflict', `${lastConflict.message}; no other free host ports are left in this node's range.`);
        throw permanent('PortsExhausted', `No ${spec.ports.length} free host ports are left in this node's range.`);
      }
      const bindings: PortBinding[] = spec.ports.map((port, i) => ({ containerPort: port.containerPort, protocol: port.protocol, hostPort: hostPorts[i] as number }));
      try {
        const definition = {
          name,
          image: spec.image,
          env: (spec.env ?? []).map((variable) => `${variable.name}=${variable.value ?? ''}`),
          labels: {
            [LABELS.uid]: target.uid,
            [LABELS.namespace]: target.namespace,
            [LABELS.name]: target.name,
            [LABELS.team]: spec.team,
            [LABELS.challenge]: spec.challenge,
            [LABELS.generation]: String(target.generation),
            [LABELS.specHash]: hash,
            [LABELS.node]: this.settings.node,
          },
          bindAddress: this.settings.bindAddress,
          ports: bindings,
          ...limitsOf(spec),
          ...(spec.command === undefined ? {} : { command: spec.command }),
          ...(spec.args === undefined ? {} : { args: spec.args }),
        };
        const container = await this.runtime.createAndStart(definition);
        this.ports.commit(hostPorts);
        return container;
      } catch (error) {
        this.ports.release(hostPorts);
        if (!(error instanceof CtfleetError) || error.code !== 'PortConflict') throw error;
        // Something outside ctfleet holds one of these ports: avoid them all next time.
        lastConflict = error;
        for (const port of hostPorts) inUse.add(port);
      }
    }
    throw permanent('PortConflict', lastConflict?.message ?? 'Host ports were taken three times in a row.');
  }

  /**
   * Host ports of this node's ctfleet containers, listed at most every 10 s.
   * Ports of containers created since are covered by the allocator's commit
   * grace period (60 s), so a stale listing never hands out a used port.
   */
  private async portsInUse(): Promise<Set<number>> {
    const now = Date.now();
    if (this.portListing === undefined || now - this.portListing.at > PORT_LISTING_TTL_MS) {
      const containers = await this.runtime.listManaged();
      this.portListing = { at: now, ports: new Set(containers.flatMap((container) => container.hostPorts)) };
    }
    return new Set(this.portListing.ports);
  }

  private async becomeReady(
    job: InstanceJob,
    instance: ChallengeInstance,
    container: ContainerInfo,
    context: JobContext,
    log: Logger,
    outcome: 'started' | 'adopted',
  ): Promise<JobOutcome> {
    const spec = job.spec as InstanceSpec;
    await context.progress(70, 'waiting for readiness');
    await this.waitUntilReady(container, spec);
    const endpoints = this.endpointsOf(container, spec);
    const readyCondition: Omit<Condition, 'lastTransitionTime'> = {
      type: 'Ready',
      status: 'True',
      reason: READY_REASONS.ready,
      message: `Container is ready on node ${this.settings.node}.`,
      observedGeneration: job.target.generation,
    };
    // The lifetime runs from the first start of this generation: a restart, a
    // re-created container or a move to another node does not reset it.
    const readyBefore = findCondition(instance.status, 'Ready');
    const sameGeneration = readyBefore?.observedGeneration === job.target.generation && readyBefore.reason !== READY_REASONS.removed;
    const previousStart = instance.status?.containerId === container.id || sameGeneration ? instance.status?.startedAt : undefined;
    try {
      await this.api.applyStatus(instance, FIELD_MANAGERS.worker, {
        node: this.settings.node,
        containerId: container.id,
        endpoints,
        startedAt: previousStart ?? kubeTime(this.now()),
        conditions: [mergeCondition(findCondition(instance.status, 'Ready'), readyCondition, this.now())],
      });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      // Deleted while it started: nothing will ask for this container again.
      await this.remove(job.target, log);
      return skipped('InstanceGone', log);
    }
    await this.observed.record(job.target.uid, {
      namespace: job.target.namespace,
      name: job.target.name,
      node: this.settings.node,
      state: 'running',
      reason: READY_REASONS.ready,
      containerId: container.id,
      endpoints,
      generation: job.target.generation,
    });
    await context.progress(100, 'ready');
    log.info({ container: container.id }, `Started container for ChallengeInstance ${job.target.namespace}/${job.target.name}`);
    return { outcome, containerId: container.id, endpoints };
  }

  /**
   * Ready when every TCP port accepts a connection on the container's own address
   * (Docker's port proxy would accept on the host port even with nothing behind
   * it). UDP cannot be probed: the container staying up counts.
   */
  private async waitUntilReady(container: ContainerInfo, spec: InstanceSpec): Promise<void> {
    const deadline = Date.now() + this.settings.readinessTimeoutMs;
    const pending = spec.ports.filter((port) => port.protocol === 'TCP');
    for (;;) {
      const inspected = await this.runtime.find(container.id);
      if (inspected === undefined || !inspected.running) {
        const logs = await this.runtime.logTail(container.id, 5);
        await this.removeContainer(container.id);
        const exit = inspected?.exitCode === undefined ? 'exited' : `exited with code ${inspected.exitCode}`;
        throw permanent('ContainerExited', `The container ${exit} before it became ready${logs === '' ? '.' : `: ${logs.split('\n').slice(-3).join(' | ')}`}`);
      }
      const host = inspected.ipAddress;
      for (let i = pending.length - 1; i >= 0; i -= 1) {
        const port = pending[i];
        if (port === undefined) continue;
        const ok = host === undefined
          ? await canConnect(probeHost(this.settings.bindAddress), inspected.hostPorts[spec.ports.indexOf(port)] ?? 0, 500)
          : await canConnect(host, port.containerPort, 500);
        if (ok) pending.splice(i, 1);
      }
      if (pending.length === 0) return;
      if (Date.now() > deadline) {
        await this.removeContainer(container.id);
        throw permanent(
          'ReadinessTimeout',
          `Port${pending.length > 1 ? 's' : ''} ${pending.map((port) => port.containerPort).join(', ')} did not accept connections within ${Math.round(this.settings.readinessTimeoutMs / 1000)} s.`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  }

  private endpointsOf(container: ContainerInfo, spec: InstanceSpec): Endpoint[] {
    const host = this.settings.advertiseAddress;
    return spec.ports.map((port, i) => {
      const hostPort = container.hostPorts[i] ?? 0;
      return { name: port.name, host, port: hostPort, protocol: port.protocol, url: endpointUrl(port.name, port.protocol, host, hostPort) };
    });
  }

  private async stop(target: JobTarget, instance: ChallengeInstance | undefined, log: Logger): Promise<JobOutcome> {
    const container = await this.runtime.find(containerName(target.namespace, target.name));
    if (container !== undefined && container.labels[LABELS.uid] === target.uid) {
      await this.stopContainer(container.id);
      log.info({ container: container.id }, `Stopped container for ChallengeInstance ${target.namespace}/${target.name}`);
    }
    const status: InstanceStatus = {
      node: this.settings.node,
      conditions: [this.readyFalse(instance, READY_REASONS.stopped, 'The container is stopped as requested.', target.generation)],
    };
    if (container !== undefined) status.containerId = container.id;
    if (instance !== undefined) await this.api.applyStatus(instance, FIELD_MANAGERS.worker, status);
    await this.observed.record(target.uid, { namespace: target.namespace, name: target.name, node: this.settings.node, state: 'stopped', reason: READY_REASONS.stopped, generation: target.generation });
    return container === undefined ? { outcome: 'stopped', reason: 'AlreadyGone' } : { outcome: 'stopped', containerId: container.id };
  }

  /** Removes the container at the end of its lifetime and reports it gone; the resource stays. */
  private async expire(target: JobTarget, instance: ChallengeInstance | undefined, log: Logger): Promise<JobOutcome> {
    const outcome = await this.remove(target, log);
    if (instance !== undefined) {
      await this.api.applyStatus(instance, FIELD_MANAGERS.worker, {
        conditions: [this.readyFalse(instance, READY_REASONS.removed, 'The container was removed at the end of its lifetime.', target.generation)],
      });
    }
    return outcome;
  }

  private async remove(target: JobTarget, log: Logger): Promise<JobOutcome> {
    const container = await this.runtime.find(containerName(target.namespace, target.name));
    // A container of the same name but another uid belongs to a newer instance.
    if (container !== undefined && container.labels[LABELS.uid] === target.uid) {
      await this.removeContainer(container.id);
      log.info({ container: container.id }, `Removed container for ChallengeInstance ${target.namespace}/${target.name}`);
    }
    await this.observed.record(target.uid, { namespace: target.namespace, name: target.name, node: this.settings.node, state: 'removed', reason: READY_REASONS.removed, generation: target.generation });
    return { outcome: 'removed', ...(container === undefined ? { reason: 'AlreadyGone' } : { containerId: container.id }) };
  }

  private readyFalse(instance: ChallengeInstance | undefined, reason: string, message: string, generation: number): Condition {
    return mergeCondition(findCondition(instance?.status, 'Ready'), { type: 'Ready', status: 'False', reason, message, observedGeneration: generation }, this.now());
  }

  private async reportFailure(target: JobTarget, instance: ChallengeInstance | undefined, error: CtfleetError): Promise<void> {
    if (instance === undefined) return;
    await this.api.applyStatus(instance, FIELD_MANAGERS.worker, {
      node: this.settings.node,
      conditions: [this.readyFalse(instance, error.code, error.message, target.generation)],
    });
    await this.observed.record(target.uid, { namespace: target.namespace, name: target.name, node: this.settings.node, state: 'failed', reason: error.code, generation: target.generation });
  }
}

function skipped(reason: string, log: Logger): JobOutcome {
  log.info({ reason }, 'Skipped a job that no longer matches its instance');
  return { outcome: 'skipped', reason };
}

function probeHost(bindAddress: string): string {
  return bindAddress === '0.0.0.0' || bindAddress === '' ? '127.0.0.1' : bindAddress === '::' ? '::1' : bindAddress;
}

function limitsOf(spec: InstanceSpec): { nanoCpus?: number; memoryBytes?: number; pidsLimit?: number } {
  const limits: { nanoCpus?: number; memoryBytes?: number; pidsLimit?: number } = {};
  const { cpu, memory, pids } = spec.resources ?? {};
  if (cpu !== undefined) {
    const value = toNanoCpus(cpu);
    if (value === undefined) throw permanent('InvalidSpec', `spec.resources.cpu: "${cpu}" is not a positive quantity`);
    limits.nanoCpus = value;
  }
  if (memory !== undefined) {
    const value = toBytes(memory);
    if (value === undefined) throw permanent('InvalidSpec', `spec.resources.memory: "${memory}" is not a positive quantity`);
    limits.memoryBytes = value;
  }
  if (pids !== undefined) limits.pidsLimit = pids;
  return limits;
}

