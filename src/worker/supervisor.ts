import type { ContainerExit, ContainerRuntime, EventWatch } from '../adapters/docker/container-runtime.ts';
import type { ChallengeInstance } from '../domain/challenge-instance.ts';
import { CtfleetError } from '../domain/errors.ts';
import { LABELS } from '../domain/names.ts';
import type { InstanceApi } from '../domain/ports.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { planDrift, type DriftAction } from './drift.ts';
import type { InstanceWorker } from './instance-worker.ts';
import { RestartPolicy, type RestartPolicyOptions } from './restart-policy.ts';

export interface SupervisorSettings {
  node: string;
  /** Namespaces this deployment manages; empty: all. */
  namespaces: string[];
  sweepIntervalMs: number;
  restart: Omit<RestartPolicyOptions, 'maxBackoffMs'>;
}

/** A container or a job younger than this is left to the job that made it. */
const SWEEP_GRACE_MS = 15_000;
const MAX_RESTART_BACKOFF_MS = 60_000;
/**
 * Exits this close to the engine going away (its event stream ending) or coming
 * back are the engine's doing: a stopping engine stops every container, and one
 * that comes back after a hard stop kills what it finds. They are restarted but
 * not counted against the restart limit.
 */
const ENGINE_DISRUPTION_MS = 30_000;
/** `engineBackAt` while the event stream is down. */
const ENGINE_AWAY = Number.MAX_SAFE_INTEGER;

/**
 * Keeps this node's containers matching the instances placed on it:
 *
 * - follows Docker's event stream, so a container that exits or is removed behind
 *   ctfleet's back is looked at within a second and restarted under the restart
 *   policy (status `ContainerRestarting` meanwhile, `CrashLoop` past the limit);
 * - sweeps the whole node every interval and whenever the event stream comes back
 *   (events may have been missed): orphans are removed, missing or stopped
 *   containers of running instances are brought back, stopped instances' stray
 *   containers are stopped, and Redis's observed state is refreshed.
 *
 * Everything it does is level-triggered and idempotent, and runs under the
 * worker's per-instance lock, so it never races a job.
 */
export class Supervisor {
  private readonly runtime: ContainerRuntime;
  private readonly api: InstanceApi;
  private readonly worker: InstanceWorker;
  private readonly settings: SupervisorSettings;
  private readonly logger: Logger;
  private readonly restarts: RestartPolicy;
  /** uids with a restart waiting for its backoff. */
  private readonly scheduled = new Map<string, NodeJS.Timeout>();
  /** uids being looked at after an event. */
  private readonly checking = new Set<string>();
  private watch: EventWatch | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private closed = false;
  private watching: Promise<void> | undefined;
  private readonly metrics: Metrics | undefined;
  /** When the event stream came back after it ended (0: it never ended). */
  private engineBackAt = 0;

  constructor(deps: { runtime: ContainerRuntime; api: InstanceApi; worker: InstanceWorker; settings: SupervisorSettings; logger: Logger; metrics?: Metrics }) {
    this.metrics = deps.metrics;
    this.runtime = deps.runtime;
    this.api = deps.api;
    this.worker = deps.worker;
    this.settings = deps.settings;
    this.logger = deps.logger.child({ component: 'supervisor' });
    this.restarts = new RestartPolicy({ ...deps.settings.restart, maxBackoffMs: MAX_RESTART_BACKOFF_MS });
  }

  start(): void {
    this.watching = this.followEvents();
    this.scheduleSweep();
  }

  /** One sweep now (a sweep already running is joined, not doubled). */
  async sweep(): Promise<void> {
    this.sweeping ??= this.sweepOnce().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private scheduleSweep(): void {
    if (this.closed) return;
    this.sweepTimer = setTimeout(() => {
      void this.sweep().then(() => {
        this.scheduleSweep();
      });
    }, this.settings.sweepIntervalMs);
  }

  private async sweepOnce(): Promise<void> {
    try {
      // Containers first, then instances: a container listed here was created
      // before the instance list was read, so its instance already says so
      // unless its job is still running (and the uid is busy).
      const containers = await this.runtime.listManaged();
      const instances = await this.api.list(this.settings.namespaces);
      const actions = planDrift({
        node: this.settings.node,
        namespaces: this.settings.namespaces,
        containers,
        instances,
        isBusy: (uid) => this.worker.isBusy(uid, SWEEP_GRACE_MS) || this.scheduled.has(uid) || this.checking.has(uid),
        now: Date.now(),
        graceMs: SWEEP_GRACE_MS,
      });
      await Promise.all(actions.map((action) => this.carryOut(action, 'sweep')));
      this.restarts.prune(Date.now());
      const repaired = actions.filter((action) => action.type !== 'healthy').length;
      if (repaired > 0) this.logger.info({ repaired, containers: containers.length }, `Sweep repaired ${repaired} drift${repaired === 1 ? '' : 's'}`);
    } catch (error) {
      this.logger.warn({ err: error }, 'Sweep failed; next interval retries');
    }
  }

  private async followEvents(): Promise<void> {
    let backoffMs = 500;
    while (!this.closed) {
      try {
        this.watch = await this.runtime.watchExits((exit) => {
          this.onExit(exit);
        });
        if (this.engineBackAt === ENGINE_AWAY) this.engineBackAt = Date.now();
        backoffMs = 500;
        // Events were not followed until now: look at everything once.
        void this.sweep();
        await this.watch.ended;
        if (!this.isClosed()) {
          this.logger.warn('Docker event stream ended; reconnecting');
          this.engineWentAway();
        }
      } catch (error) {
        this.logger.warn({ err: error }, 'Following Docker events failed; retrying');
        this.engineWentAway();
      }
      if (this.isClosed()) break;
      await new Promise((resolve) => setTimeout(resolve, backoffMs));
      backoffMs = Math.min(backoffMs * 2, 10_000);
    }
  }

  /** The engine went away: the exits just before were its doing, not the containers'. */
  private engineWentAway(): void {
    this.restarts.forgiveSince(Date.now() - ENGINE_DISRUPTION_MS);
    this.engineBackAt = ENGINE_AWAY;
  }

  /** True while exits are blamed on the engine (it is away, or came back moments ago). */
  private engineDisrupted(): boolean {
    return Date.now() - this.engineBackAt < ENGINE_DISRUPTION_MS;
  }

  private onExit(exit: ContainerExit): void {
    if (this.worker.isExpectedExit(exit.id)) return;
    const uid = exit.labels[LABELS.uid];
    const namespace = exit.labels[LABELS.namespace];
    const name = exit.labels[LABELS.name];
    if (uid === undefined || namespace === undefined || name === undefined) return;
    // Another node's or another deployment's container on a shared engine: not ours to look at.
    if (exit.labels[LABELS.node] !== this.settings.node) return;
    if (this.settings.namespaces.length > 0 && !this.settings.namespaces.includes(namespace)) return;
    if (this.worker.isBusy(uid, 0) || this.scheduled.has(uid) || this.checking.has(uid)) return;
    // One look per uid at a time: `die` and `destroy` of one removal come together.
    this.checking.add(uid);
    const log = this.instanceLog(namespace, name, uid);
    log.info({ container: exit.id, exitCode: exit.exitCode, event: exit.action }, `Container of ChallengeInstance ${namespace}/${name} ${exit.action === 'die' ? `exited${exit.exitCode === undefined ? '' : ` with code ${exit.exitCode}`}` : 'was removed'} behind ctfleet's back`);
    void this.checkOne(namespace, name, uid, exit)
      .catch((error: unknown) => {
        log.warn({ err: error }, 'Checking an exited container failed; the next sweep retries');
      })
      .finally(() => this.checking.delete(uid));
  }

  /**
   * The sweep, narrowed to one instance (after an event). Docker may still list
   * a container as running a moment after its `die` event: the event wins.
   */
  private async checkOne(namespace: string, name: string, uid: string, exit: ContainerExit): Promise<void> {
    const containers = (await this.runtime.listManaged())
      .filter((container) => container.labels[LABELS.uid] === uid && !(exit.action === 'destroy' && container.id === exit.id))
      .map((container) => (container.id === exit.id ? { ...container, running: false } : container));
    const instance = await this.api.get(namespace, name);
    const actions = planDrift({
      node: this.settings.node,
      namespaces: this.settings.namespaces,
      containers,
      instances: instance === undefined ? [] : [instance],
      isBusy: (id) => this.worker.isBusy(id, 0) || this.scheduled.has(id),
      now: Date.now(),
      // An event is news about an existing container, never a half-made one.
      graceMs: 0,
    });
    this.instanceLog(namespace, name, uid).debug({ actions: actions.map((action) => action.type) }, 'Looked at an exited container');
    // Only an exit of the container's own counts as a crash: not a removal, and not
    // an exit while the engine stops or starts.
    const crash = exit.action === 'die' && !this.engineDisrupted();
    await Promise.all(actions.map((action) => this.carryOut(action, crash ? 'crash' : 'event')));
  }

  /**
   * `crash`: the container exited on its own, which counts against the restart
   * limit. A sweep's findings and removals are repaired without counting: the
   * sweep may find a container stopped by an engine restart, and may look again
   * while a repair is still failing.
   */
  private async carryOut(action: DriftAction, trigger: 'sweep' | 'event' | 'crash'): Promise<void> {
    try {
      switch (action.type) {
        case 'healthy':
          await this.worker.recordHealthy(action.instance, action.container);
          return;
        case 'remove':
          await this.worker.removeOrphan(action.container);
          this.metrics?.driftRepairs.inc({ kind: 'remove' });
          this.containerLog(action.container.labels).info({ container: action.container.id, reason: action.reason, trigger }, `Removed orphan container ${action.container.name} (${action.reason})`);
          return;
        case 'stop':
          await this.worker.stopUnwanted(action.container);
          this.metrics?.driftRepairs.inc({ kind: 'stop' });
          this.containerLog(action.container.labels).info({ container: action.container.id, trigger }, `Stopped container ${action.container.name}: its instance asks to be stopped`);
          return;
        case 'revive':
          this.metrics?.driftRepairs.inc({ kind: 'revive' });
          await this.planRestart(action.instance, action.container === undefined ? 'is gone' : 'is not running', trigger === 'crash');
          return;
      }
    } catch (error) {
      const log = action.type === 'revive' || action.type === 'healthy' ? this.instanceLog(action.instance.metadata.namespace, action.instance.metadata.name, action.instance.metadata.uid) : this.containerLog(action.container.labels);
      log.warn({ err: error, action: action.type }, 'A drift repair failed; the next sweep retries');
    }
  }

  /** Restarts after the policy's backoff (a crash), or at once (not a crash), or gives up with CrashLoop. */
  private async planRestart(instance: ChallengeInstance, what: string, crash: boolean): Promise<void> {
    const { namespace, name, uid, generation } = instance.metadata;
    const log = this.instanceLog(namespace, name, uid);
    const decision = crash ? this.restarts.next(`${uid}/${generation}`, Date.now()) : undefined;
    const { limit, windowMs } = this.settings.restart;
    this.metrics?.containerRestarts.inc({ decision: decision === undefined || decision.restart ? 'restart' : 'crashloop' });
    if (decision?.restart === false) {
      const message = `The container ${what}; it stopped ${decision.restarts + 1} times within ${Math.round(windowMs / 1000)} s (limit ${limit} restarts). Change the spec to try again.`;
      await this.worker.reportCrashLoop(instance, message);
      log.warn(`ChallengeInstance ${namespace}/${name} is in CrashLoop`);
      return;
    }
    const message = decision === undefined
      ? `The container ${what}; starting it again (not counted against the restart limit).`
      : `The container ${what}; restart ${decision.attempt} of ${limit} in ${Math.round(decision.delayMs / 100) / 10} s.`;
    await this.worker.reportRestarting(instance, message);
    const timer = setTimeout(() => {
      this.scheduled.delete(uid);
      if (this.closed) return;
      void this.worker.revive(namespace, name, uid, generation).then(
        (outcome) => {
          if (outcome.outcome !== 'skipped') log.info({ outcome: outcome.outcome }, `Restarted the container of ChallengeInstance ${namespace}/${name}`);
        },
        async (error: unknown) => {
          // It exited again before it was ready: that is one more crash.
          if (error instanceof CtfleetError && error.code === 'ContainerExited') {
            const fresh = await this.api.get(namespace, name).catch(() => undefined);
            if (fresh?.metadata.uid === uid && fresh.metadata.generation === generation) await this.planRestart(fresh, 'exited again before it was ready', !this.engineDisrupted()).catch(() => undefined);
            return;
          }
          log.warn({ err: error }, 'Restarting a container failed; the next sweep retries');
        },
      );
    }, decision?.delayMs ?? 0);
    this.scheduled.set(uid, timer);
  }

  private instanceLog(namespace: string, name: string, uid: string): Logger {
    return this.logger.child({ instance: `${namespace}/${name}`, uid });
  }

  /** The log of a container's instance, as its labels name it (an orphan's may name none). */
  private containerLog(labels: Record<string, string>): Logger {
    const [namespace, name, uid] = [labels[LABELS.namespace], labels[LABELS.name], labels[LABELS.uid]];
    return namespace === undefined || name === undefined || uid === undefined ? this.logger : this.instanceLog(namespace, name, uid);
  }

  /** A method, not the field: the flag changes across awaits. */
  private isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.sweepTimer);
    for (const timer of this.scheduled.values()) clearTimeout(timer);
    this.scheduled.clear();
    this.watch?.close();
    await this.watching;
    await this.sweeping;
  }
}
