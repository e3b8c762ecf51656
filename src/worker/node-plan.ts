import { findCondition, type ChallengeInstance, type InstanceSpec } from '../domain/challenge-instance.ts';
import type { InstanceJob } from '../domain/jobs.ts';
import { containerName, LABELS } from '../domain/names.ts';
import type { ContainerInfo } from '../domain/ports.ts';
import { formatBytes } from '../domain/quantities.ts';
import { isServing, READY_REASONS, REMOVAL_REASONS, SKIP_REASONS, type RemovalReason } from '../domain/reasons.ts';
import { specHash } from '../domain/spec-hash.ts';
import type { RestartDecision } from './restart-policy.ts';

/**
 * The node planner: what this node must do for one instance, from what should
 * be (the instance as the API server has it, and the jobs that ask for it) and
 * what is (this node's containers of the instance). Pure: no I/O, no clock but
 * `now`, no logging. The worker half's counterpart of the controller's `plan()`.
 */

/** Docker said a container of the instance stopped (`died`) or was removed, since the last pass. */
export interface ExitNote {
  containerId: string;
  died: boolean;
  /** The OOM killer ended it (known when the worker saw it die while waiting for readiness). */
  oomKilled?: boolean;
}

/**
 * How a container killed by the OOM killer ended, for people: `was killed by the
 * OOM killer at its memory limit of 16Mi` (`memory`: the limit, when known).
 */
export function oomKilledPhrase(memory: string | undefined): string {
  return `was killed by the OOM killer at its memory limit${memory === undefined ? '' : ` of ${memory}`}`;
}

/** Everything one pass knows about one instance on this node. */
export interface NodeFacts {
  node: string;
  uid: string;
  /** The newest object with this uid; undefined when it is gone (or re-created with another uid). */
  instance: ChallengeInstance | undefined;
  /** This node's containers labelled with the uid. */
  containers: ContainerInfo[];
  /** Jobs waiting for this pass (start, stop, expire, delete). */
  jobs: InstanceJob[];
  exit: ExitNote | undefined;
  restart: {
    /** A restart after a crash waits until then. */
    dueAt: number | undefined;
    /** What the restart policy says for one more crash now. */
    next: RestartDecision;
    limit: number;
    windowMs: number;
  };
  /** The engine is away or came back moments ago: exits now are its doing, not the container's. */
  engineDisrupted: boolean;
  now: number;
}

/** Why a container runs: a job asked, or the worker restarts it on its own. */
export type RunCause = 'job' | 'restart';

/** One step of a pass, carried out in order; reports use what the steps before them did. */
export type NodeAction =
  | { type: 'Remove'; container: ContainerInfo; reason: RemovalReason | 'Requested' }
  | { type: 'Stop'; container: ContainerInfo; repair: boolean }
  | { type: 'Run'; spec: InstanceSpec; generation: number; existing: ContainerInfo | undefined; preferredPorts: number[]; cause: RunCause }
  | { type: 'ReportReady' }
  | { type: 'ReportStopped'; containerId: string | undefined }
  /** Gone for good; `expired` also says so in status (Ready=True ContainerRemoved). */
  | { type: 'ReportRemoved'; expired: boolean }
  | { type: 'ReportRestarting'; message: string }
  | { type: 'ReportCrashLoop'; message: string }
  | { type: 'RecordHealthy'; container: ContainerInfo };

/** What a job gets once the pass's actions are done. */
export type JobVerdict =
  | { job: InstanceJob; outcome: 'skipped'; reason: string }
  /** The outcome of the pass's Run. */
  | { job: InstanceJob; outcome: 'ran' }
  | { job: InstanceJob; outcome: 'stopped' | 'removed'; containerId: string | undefined };

export interface NodePlan {
  actions: NodeAction[];
  verdicts: JobVerdict[];
  /** Count a crash restart now, and when the restart is due (undefined: none waits). */
  restart: { count: boolean; dueAt: number | undefined };
  /** Look again after this long; null when nothing on this node waits for time. */
  requeueAfterMs: number | null;
}

/**
 * Decides one pass for one instance on this node.
 *
 * - Gone, deleting, or a delete job: every container of the uid goes.
 * - Placed on another node (and no start job of this generation here): they go.
 * - Expired at this generation, or an expire job: the container goes, and status says so.
 * - Stopped: the container stops, and status says so.
 * - Running with a start job for this generation and this spec (its hash): run
 *   the container (adopt, start, replace or create). A start job naming another
 *   spec is skipped: only the API server's spec runs.
 * - Running, placed here and ready for this generation before: keep it running.
 *   An exit of its own counts against the restart policy (restart after its
 *   backoff, or CrashLoop past the limit); any other disappearance (removed,
 *   found stopped by a sweep, an engine restart) is restarted at once, uncounted.
 * - Anything else (a job on its way, a failure waiting for a spec change): nothing.
 *
 * Guarantees: idempotent. Once the actions are done, planning again with the
 * world as they left it yields no actions but RecordHealthy.
 */
export function planNode(facts: NodeFacts): NodePlan {
  const { instance, containers, jobs, node } = facts;
  const idle: NodePlan['restart'] = { count: false, dueAt: undefined };
  const removeAll = (reason: RemovalReason | 'Requested', list: ContainerInfo[] = containers): NodeAction[] => list.map((container) => ({ type: 'Remove', container, reason }));
  const firstId = (list: ContainerInfo[]): string | undefined => list[0]?.id;

  // ---- gone, deleting, or asked to delete
  if (instance === undefined || instance.metadata.deletionTimestamp !== undefined || jobs.some((job) => job.action === 'delete')) {
    const asked = jobs.length > 0;
    const reason = instance === undefined ? REMOVAL_REASONS.noInstance : REMOVAL_REASONS.instanceDeleting;
    const actions: NodeAction[] = removeAll(asked ? 'Requested' : reason);
    if (asked) actions.push({ type: 'ReportRemoved', expired: false });
    const skip = instance === undefined ? SKIP_REASONS.instanceGone : SKIP_REASONS.instanceDeleting;
    const verdicts = jobs.map((job): JobVerdict => (job.action === 'delete' || job.action === 'expire' ? { job, outcome: 'removed', containerId: firstId(containers) } : { job, outcome: 'skipped', reason: skip }));
    return { actions, verdicts, restart: idle, requeueAfterMs: null };
  }

  const { metadata, spec, status } = instance;
  const generation = metadata.generation;
  const canonical = containers.find((container) => container.name === containerName(metadata.namespace, metadata.name));
  const actions: NodeAction[] = removeAll(REMOVAL_REASONS.duplicate, containers.filter((container) => container !== canonical));
  const current = jobs.filter((job) => job.target.generation === generation);
  const verdicts: JobVerdict[] = jobs.filter((job) => job.target.generation !== generation).map((job) => ({ job, outcome: 'skipped', reason: SKIP_REASONS.superseded }));
  const asks = (action: InstanceJob['action']): InstanceJob[] => current.filter((job) => job.action === action);
  const skipAll = (list: InstanceJob[], reason: string): void => {
    for (const job of list) verdicts.push({ job, outcome: 'skipped', reason });
  };
  const done = (requeueAfterMs: number | null = null, restart = idle): NodePlan => ({ actions, verdicts, restart, requeueAfterMs });
  const ready = findCondition(status, 'Ready');
  /** Status says so already, for this generation: nothing to report (unless a job asks). */
  const says = (reason: string): boolean => ready?.observedGeneration === generation && ready.reason === reason;

  // ---- placed on another node: a start job of this generation moves it here
  const placedOn = status?.node === undefined || status.node === '' ? undefined : status.node;
  if (placedOn !== undefined && placedOn !== node && asks('start').length === 0) {
    if (canonical !== undefined) actions.push({ type: 'Remove', container: canonical, reason: REMOVAL_REASONS.placedElsewhere });
    skipAll(current, SKIP_REASONS.superseded);
    return done();
  }

  // ---- its lifetime ended
  const expired = (status?.phase === 'Expired' && (status.observedGeneration ?? generation) === generation) || asks('expire').length > 0;
  if (expired) {
    if (canonical !== undefined) actions.push({ type: 'Remove', container: canonical, reason: asks('expire').length > 0 ? 'Requested' : REMOVAL_REASONS.expired });
    if (asks('expire').length > 0 || canonical !== undefined || !says(READY_REASONS.removed)) actions.push({ type: 'ReportRemoved', expired: true });
    for (const job of current) {
      verdicts.push(job.action === 'expire' ? { job, outcome: 'removed', containerId: canonical?.id } : { job, outcome: 'skipped', reason: SKIP_REASONS.expired });
    }
    return done();
  }

  // ---- asked to be stopped
  if (spec.desiredState === 'Stopped') {
    const stopJobs = asks('stop');
    if (canonical?.running === true) actions.push({ type: 'Stop', container: canonical, repair: stopJobs.length === 0 });
    const reported = says(READY_REASONS.stopped) && status?.containerId === canonical?.id;
    if (stopJobs.length > 0 || (canonical !== undefined && !reported)) actions.push({ type: 'ReportStopped', containerId: canonical?.id });
    for (const job of current) {
      verdicts.push(job.action === 'stop' ? { job, outcome: 'stopped', containerId: canonical?.id } : { job, outcome: 'skipped', reason: SKIP_REASONS.superseded });
    }
    return done();
  }

  // ---- asked to run: a start job of this generation
  skipAll(current.filter((job) => job.action !== 'start'), SKIP_REASONS.superseded);
  // The spec that runs is the API server's; a job naming another (written into
  // Redis by someone else) asks for nothing.
  const hash = specHash(spec);
  skipAll(asks('start').filter((job) => job.specHash !== hash), SKIP_REASONS.specMismatch);
  const starts = asks('start').filter((job) => job.specHash === hash);
  if (starts.length > 0) {
    actions.push({ type: 'Run', spec, generation, existing: canonical, preferredPorts: [], cause: 'job' }, { type: 'ReportReady' });
    for (const job of starts) verdicts.push({ job, outcome: 'ran' });
    return done();
  }

  // ---- keep running what ran here for this generation
  const wasRunning = ready?.observedGeneration === generation && (isServing(ready) || ready.reason === READY_REASONS.restarting);
  if (placedOn !== node || !wasRunning) return done();
  const preferredPorts = (status?.endpoints ?? []).map((endpoint) => endpoint.port);
  const revive: NodeAction[] = [{ type: 'Run', spec, generation, existing: canonical, preferredPorts, cause: 'restart' }, { type: 'ReportReady' }];
  const { dueAt } = facts.restart;
  if (dueAt !== undefined) {
    if (facts.now < dueAt) return done(dueAt - facts.now, { count: false, dueAt });
    actions.push(...revive);
    return done();
  }
  // Docker may still list a container as running a moment after its `die` event: the event wins.
  const exit = facts.exit;
  const diedNow = exit?.died === true && (canonical === undefined || exit.containerId === canonical.id);
  if (canonical?.running === true && !diedNow) {
    if (isServing(ready)) actions.push({ type: 'RecordHealthy', container: canonical });
    else actions.push(...revive);
    return done();
  }
  // The OOM killer is named, with the limit the engine enforced (else the spec's):
  // a player's memory hog reads differently from a crash.
  const oomKilled = diedNow && (canonical?.oomKilled === true || exit.oomKilled === true);
  const memory = canonical?.memoryBytes === undefined ? spec.resources?.memory : formatBytes(canonical.memoryBytes);
  const what = oomKilled ? oomKilledPhrase(memory) : canonical === undefined ? 'is gone' : 'is not running';
  // Only an exit of the container's own counts as a crash: not a removal, not
  // something a sweep found, and not an exit while the engine stops or starts.
  if (!diedNow || facts.engineDisrupted) {
    actions.push({ type: 'ReportRestarting', message: `The container ${what}; starting it again (not counted against the restart limit).` }, ...revive);
    return done();
  }
  const decision = facts.restart.next;
  const { limit, windowMs } = facts.restart;
  if (!decision.restart) {
    actions.push({ type: 'ReportCrashLoop', message: `The container ${what}; it stopped ${decision.restarts + 1} times within ${Math.round(windowMs / 1000)} s (limit ${limit} restarts). Change the spec to try again.` });
    return done();
  }
  actions.push({ type: 'ReportRestarting', message: `The container ${what}; restart ${decision.attempt} of ${limit} in ${Math.round(decision.delayMs / 100) / 10} s.` });
  return done(decision.delayMs, { count: true, dueAt: facts.now + decision.delayMs });
}

/** What one sweep of a node decides for a container or an instance, as the node planner sees its snapshot. */
export type DriftAction =
  | { type: 'remove'; container: ContainerInfo; reason: RemovalReason }
  | { type: 'stop'; container: ContainerInfo; instance: ChallengeInstance }
  /** Should run here and does not: restart the container, or re-create it when it is gone. */
  | { type: 'revive'; instance: ChallengeInstance; container: ContainerInfo | undefined }
  /** Runs as it should. */
  | { type: 'healthy'; instance: ChallengeInstance; container: ContainerInfo };

export interface DriftInput {
  node: string;
  /** The deployment's namespaces (empty: all): containers of others are not its business. */
  namespaces: readonly string[];
  /** Every container on this node that carries ctfleet's labels. */
  containers: ContainerInfo[];
  /** Every ChallengeInstance. */
  instances: ChallengeInstance[];
  /** Jobs wait for this uid: their passes will look at it. */
  isBusy: (uid: string) => boolean;
  now: number;
  /** Containers younger than this are left alone: their instance may not say so yet. */
  graceMs: number;
}

/**
 * True for a container this node's worker made in the deployment's namespaces
 * (empty: all), by its labels. Another worker's (several sharing one engine) or
 * another deployment's are not this worker's to judge.
 */
export function isOwnContainer(labels: Record<string, string>, node: string, namespaces: readonly string[]): boolean {
  if (labels[LABELS.node] !== node) return false;
  return namespaces.length === 0 || namespaces.includes(labels[LABELS.namespace] ?? '');
}

const NO_CRASH: NodeFacts['restart'] = { dueAt: undefined, next: { restart: true, attempt: 1, delayMs: 0 }, limit: 0, windowMs: 0 };

/**
 * The node planner over a sweep's snapshot: what each instance on this node
 * would need, without jobs or exits. The sweep queues a pass for every uid with
 * something to do (each pass then reads afresh and plans again). Pure.
 *
 * Only containers this node's worker created, in the deployment's namespaces,
 * are looked at; instances placed here that were ready for their generation
 * must have a running container.
 */
export function planDrift(input: DriftInput): DriftAction[] {
  const { node, namespaces, instances, isBusy, now, graceMs } = input;
  const byUid = new Map(instances.map((instance) => [instance.metadata.uid, instance]));
  const containersOf = new Map<string, ContainerInfo[]>();
  // A uid with a container younger than the grace is in flux (a start just made
  // it): left whole to the next sweep. Planned without that container, an
  // instance whose status already names this node read as missing and got a
  // pass of its own, each listing its uid's containers: 0.30 listings a start in
  // a burst of 500, ~0.5 s each with 500 containers (docs/benchmark.md).
  const young = new Set<string>();
  for (const container of input.containers) {
    if (!isOwnContainer(container.labels, node, namespaces)) continue;
    const uid = container.labels[LABELS.uid] ?? '';
    if (now - container.createdAt < graceMs) {
      young.add(uid);
      continue;
    }
    containersOf.set(uid, [...(containersOf.get(uid) ?? []), container]);
  }
  const uids = new Set([...containersOf.keys(), ...instances.filter((instance) => instance.status?.node === node).map((instance) => instance.metadata.uid)]);
  const actions: DriftAction[] = [];
  for (const uid of uids) {
    if (isBusy(uid) || young.has(uid)) continue;
    const instance = byUid.get(uid);
    const plan = planNode({ node, uid, instance, containers: containersOf.get(uid) ?? [], jobs: [], exit: undefined, restart: NO_CRASH, engineDisrupted: false, now });
    for (const action of plan.actions) {
      if (action.type === 'Remove' && action.reason !== 'Requested') actions.push({ type: 'remove', container: action.container, reason: action.reason });
      else if (action.type === 'Stop' && instance !== undefined) actions.push({ type: 'stop', container: action.container, instance });
      else if (action.type === 'Run' && instance !== undefined) actions.push({ type: 'revive', instance, container: action.existing });
      else if (action.type === 'RecordHealthy' && instance !== undefined) actions.push({ type: 'healthy', instance, container: action.container });
    }
  }
  return actions;
}
