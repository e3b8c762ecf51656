import type { ChallengeInstance, Endpoint, InstanceStatus, Protocol, PullPolicy } from './challenge-instance.ts';
import type { Challenge, ChallengeStatus } from './challenge.ts';
import type { Egress } from './isolation.ts';
import type { InstanceJob, JobState } from './jobs.ts';
import type { ClaimRecord, PoolCount } from './pool.ts';

/**
 * The small interfaces the controller and worker need from the outside world.
 * Shaped by the core's needs, implemented by src/adapters. Every interface the
 * core depends on lives here, so the core never imports an adapter and an
 * adapter never imports the core.
 */

/** The one source of time of a component: tests pass a clock they move by hand. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const SYSTEM_CLOCK: Clock = { now: () => Date.now() };

// ---- Kubernetes

export interface InstanceEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** Reads and writes ChallengeInstances through the Kubernetes API. */
export interface InstanceApi {
  /** The newest object from the API server, or undefined when it does not exist. */
  get(namespace: string, name: string): Promise<ChallengeInstance | undefined>;
  /** Every ChallengeInstance of these namespaces (all when empty), read from the API server (not a cache). */
  list(namespaces?: readonly string[]): Promise<ChallengeInstance[]>;
  /**
   * The instances whose `status.node` is `node` (a field selector, so the API
   * server filters); undefined when the API server cannot select on that field
   * (before Kubernetes 1.31), for the caller to fall back on {@link list}.
   */
  listPlacedOn(node: string, namespaces?: readonly string[]): Promise<ChallengeInstance[] | undefined>;
  /** Adds ctfleet's finalizer; resolves with the object's new resourceVersion. */
  addFinalizer(instance: ChallengeInstance): Promise<string | undefined>;
  removeFinalizer(instance: ChallengeInstance): Promise<void>;
  /** Deletes this object (not a newer one of the same name); gone already is success. */
  delete(instance: ChallengeInstance): Promise<void>;
  /**
   * Server-side applies the given status fields as `fieldManager`: fields this
   * manager set before and omits now are removed; other managers' fields stay.
   */
  applyStatus(instance: ChallengeInstance, fieldManager: string, status: InstanceStatus): Promise<void>;
  recordEvent(instance: ChallengeInstance, event: InstanceEvent, component: string): Promise<void>;
}

/** A watched, cached view of every ChallengeInstance. */
export interface InstanceCache {
  /** Starts watching; `onChange` receives the key of every object that changed. */
  start(onChange: (key: string) => void): Promise<void>;
  get(key: string): ChallengeInstance | undefined;
  keys(): string[];
  keyForUid(uid: string): string | undefined;
  hasSynced(): boolean;
  close(): Promise<void>;
}

/** The controller's view of the Challenges, kept current by a watch. */
export interface ChallengeCache {
  /** Starts watching; `onChange` receives the `namespace/name` of every Challenge that changed. */
  start(onChange: (key: string) => void): Promise<void>;
  get(key: string): Challenge | undefined;
  keys(): string[];
  hasSynced(): boolean;
  close(): Promise<void>;
}

/** The warm pools as the live workers last reported them (their heartbeats), summed per Challenge `namespace/name`. */
export interface PoolCountSource {
  poolCounts(): Promise<Map<string, { idle: number; target: number }>>;
}

/** Writes the controller's part of Challenges through the Kubernetes API. */
export interface ChallengeApi {
  /** Adds the finalizer `ctfleet.io/instances`; resolves with the object's new resourceVersion. */
  addFinalizer(challenge: Challenge): Promise<string | undefined>;
  /** Removes only that finalizer; a Challenge already gone is success. */
  removeFinalizer(challenge: Challenge): Promise<void>;
  /** Server-side applies the given status fields as `fieldManager`, on the status subresource. */
  applyStatus(challenge: Challenge, fieldManager: string, status: ChallengeStatus): Promise<void>;
  recordEvent(challenge: Challenge, event: InstanceEvent, component: string): Promise<void>;
}

/** A Challenge read from the API server, for the worker that makes a container from it. */
export interface ChallengeSource {
  get(namespace: string, name: string): Promise<Challenge | undefined>;
}

// ---- flags (docs/flags.md)

/** The ChallengeInstance a per-instance flag belongs to. */
export interface FlagOwner {
  namespace: string;
  name: string;
  uid: string;
}

/** One key of a Secret in the namespace it is used from. */
export interface SecretKeyRef {
  name: string;
  key: string;
}

/**
 * Where flags' secrets live: Kubernetes Secrets in production
 * (`adapters/kubernetes/flag-secrets.ts`).
 *
 * Guarantees: nothing it returns appears in its errors; callers keep it out of
 * logs, metrics, Events, status and Redis too. Its errors are `CtfleetError`s:
 * `FlagKeyInvalid` and `FlagSecretInvalid` (permanent, a person must fix a Secret or
 * a setting), `Forbidden` (permanent), or transient when the API server is away.
 */
export interface FlagStore {
  /**
   * The deployment key of per-team flags (CTFLEET_FLAG_KEY_SECRET), at least
   * `FLAG_KEY_MIN_BYTES` long. Kept in memory briefly: a changed key is seen
   * within that time.
   */
  deploymentKey(): Promise<Buffer>;
  /**
   * The random part of this instance's flag: read from the instance's own flag
   * Secret, which is created (owned by the instance, so deleted with it) the first
   * time. Concurrent calls for one instance agree on one part. A Secret of that name
   * not owned by this instance (by uid) is refused, never reused.
   */
  instanceFlagPart(owner: FlagOwner): Promise<string>;
  /** An organiser's static flag: the value of `ref` in `namespace`, one trailing newline dropped. */
  staticFlag(namespace: string, ref: SecretKeyRef): Promise<string>;
}

export interface QueuedJob {
  state: JobState | 'missing';
  failedReason?: string;
  attempts?: number;
  /** When the job entered the queue, ms since the epoch. */
  queuedAt?: number;
}

/** The job queues, as the controller uses them. */
export interface JobQueue {
  /** Adds a job unless one with the same id exists. */
  enqueue(queue: string, jobId: string, job: InstanceJob, priority: number): Promise<void>;
  inspect(queue: string, jobId: string): Promise<QueuedJob>;
  /** Calls back with the job id whenever a job of a queue in use completes or fails. */
  onJobChange(listener: (jobId: string) => void): void;
  close(): Promise<void>;
}

// ---- the controller's view of the workers and of its Lease

/** The Lease record as the elector reads and writes it. */
export interface LeaseRecord {
  holderIdentity: string | undefined;
  leaseDurationSeconds: number;
  acquireTime: string | undefined;
  renewTime: string | undefined;
  leaseTransitions: number;
  /** Opaque version for compare-and-swap writes. */
  resourceVersion?: string;
}

/** Storage of one Lease with optimistic concurrency (a Kubernetes Lease in production). */
export interface LeaseStore {
  read(): Promise<LeaseRecord | undefined>;
  /** Creates the lease; false if someone else created it first. */
  create(record: LeaseRecord): Promise<boolean>;
  /** Replaces the lease if it is still at `record.resourceVersion`; false on conflict. */
  update(record: LeaseRecord): Promise<boolean>;
}

/** Where the controller reads which workers are alive (their heartbeats). */
export interface LiveNodeSource {
  /** Nodes whose heartbeat has not expired. */
  liveNodes(): Promise<Set<string>>;
}

// ---- the worker's side

/** What a worker says about itself every beat. */
export interface WorkerBeat {
  node: string;
  /** Jobs it takes at once from each queue. */
  capacity: number;
  /** ctfleet containers running on its node. */
  running: number;
  version: string;
  startedAt: string;
  beatAt: string;
  /** Its warm pools: idle and wanted containers per Challenge (absent: none). */
  pools?: PoolCount[];
}

export interface HeartbeatStore {
  /** Records the beat; it expires after `ttlMs` unless renewed. */
  beat(beat: WorkerBeat, ttlMs: number): Promise<void>;
  /** Removes the worker's entry (graceful exit). */
  remove(node: string): Promise<void>;
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

/**
 * Directories on the node for files given to running pool containers (the
 * flag, at claim time): one per container, named after it, bind-mounted
 * read-only, so a claim writes a file instead of going through Docker.
 */
export interface PoolFiles {
  /** Creates the container's directory; resolves with its path as dockerd sees it. */
  prepare(name: string): Promise<string>;
  /** Writes files (plain names) into the directory, each whole or not at all. */
  write(name: string, files: readonly { name: string; content: string; mode: number }[]): Promise<void>;
  remove(name: string): Promise<void>;
  /** The directories there are. */
  list(): Promise<string[]>;
}

/**
 * Claims of warm pool containers (docs/pools.md), one record per container,
 * kept per node. The store is the arbiter: a container is claimed once, by the
 * first `claim` that names it, whatever process or node asks.
 */
export interface PoolClaimStore {
  /** Records the claim; false when the container was claimed before (by anyone). */
  claim(node: string, containerId: string, record: ClaimRecord): Promise<boolean>;
  /** Every claim recorded for the node's containers. */
  load(node: string): Promise<Map<string, ClaimRecord>>;
  /** Forgets the claims of containers that are gone. */
  forget(node: string, containerIds: readonly string[]): Promise<void>;
}

/**
 * How long a healthy instance's observed state, as a worker wrote it, is not
 * written again: well within its expiry in Redis (a day). A node's marker in the
 * store lives as long, so a node that left leaves nothing behind.
 */
export const OBSERVED_REFRESH_MS = 60 * 60_000;

export interface ObservedStateStore {
  record(uid: string, state: ObservedState): Promise<void>;
  /**
   * True when the store no longer holds this node's marker (Redis restarted
   * empty, or was flushed), which it then sets again: every state recorded
   * before is gone.
   */
  lostSince(node: string): Promise<boolean>;
}

/** The slice of a queued job its handler uses. */
export interface JobContext {
  id: string;
  /** Records a step for the job's watchers; returns at once (written in order, at most every 250 ms, the last one before the job ends). */
  progress(percent: number, step: string): void;
}

/** What a job achieved: its BullMQ return value, read by the CLI and the dashboard. */
export interface JobOutcome {
  /** `claimed`: a warm pool container became the instance's (docs/pools.md). */
  outcome: 'started' | 'adopted' | 'claimed' | 'stopped' | 'removed' | 'skipped';
  reason?: string;
  containerId?: string;
  endpoints?: Endpoint[];
  /** A start's stages on the worker, so the slow one is named (docs/benchmark.md). */
  timeline?: StartTimeline;
}

/**
 * When (ms since the epoch, the worker's clock) each stage of a start ended on the
 * worker: the job's `processedOn` is when it was taken.
 */
export interface StartTimeline {
  /** The node's pass for the instance began (after the worker's own key queue). */
  pass: number;
  /** The instance was read from the API server and its containers from Docker. */
  read?: number;
  /** The image was checked (or pulled): creating (or claiming) begins. */
  image?: number;
  /** The container was created and started (or claimed). */
  started?: number;
  /** Its ports accepted connections. */
  ready?: number;
  /** The worker's status write (Ready=True) was answered. */
  reported?: number;
}

export interface PortBinding {
  containerPort: number;
  protocol: Protocol;
  hostPort: number;
}

/** Everything that shapes a container ctfleet creates. */
export interface ContainerDefinition {
  name: string;
  image: string;
  env: string[];
  command?: string[];
  args?: string[];
  labels: Record<string, string>;
  bindAddress: string;
  ports: PortBinding[];
  nanoCpus: number;
  /** Memory and memory+swap alike: no swap. */
  memoryBytes: number;
  pidsLimit: number;
  /** Capabilities kept; every other one is dropped. */
  capabilities: string[];
  /** RLIMIT_NOFILE, soft and hard. */
  nofile: number;
  /** json-file log rotation. */
  log: { maxSize: string; maxFiles: number };
  /** The root filesystem is mounted read-only. */
  readOnlyRootFilesystem: boolean;
  /** tmpfs mounts, each `rw,noexec,nosuid,nodev` and of this many bytes. */
  tmpfs: { path: string; sizeBytes: number }[];
  /** A Docker runtime other than the engine's default (e.g. `runsc`); absent: the default. */
  runtime?: string;
  /** The Docker network the container joins (one of the node's instance networks). */
  network: string;
  /** Resolvers for Docker's embedded DNS to forward to; empty: the node's. */
  dns: string[];
  /**
   * Files written into the container after it is created and before it starts
   * (a flag with File delivery); each directory is a volume of the container's
   * own, so this works with a read-only root filesystem.
   */
  files: ContainerFile[];
  /**
   * Host directories bind-mounted read-only: a pool container's files
   * directory, which the worker writes a claim's files into (docs/pools.md).
   */
  binds?: { source: string; target: string }[];
}

export interface ContainerInfo {
  id: string;
  name: string;
  running: boolean;
  exitCode: number | undefined;
  labels: Record<string, string>;
  hostPorts: number[];
  /** Address on Docker's bridge network, when the container has one (inspect only). */
  ipAddress?: string;
  /** The kernel's OOM killer killed a process of it, since it last started (inspect only). */
  oomKilled?: boolean;
  /** Its memory limit in bytes (inspect only; absent when it has none). */
  memoryBytes?: number;
  /** When Docker created it, in ms since the epoch (second precision from listings). */
  createdAt: number;
}

/** A ctfleet container that stopped running (`die`) or was removed (`destroy`). */
export interface ContainerExit {
  id: string;
  action: 'die' | 'destroy';
  labels: Record<string, string>;
  exitCode: number | undefined;
}

/** An open subscription to Docker's event stream. */
export interface EventWatch {
  /** Resolves when the stream ends (the engine stopped or restarted) or is closed. */
  ended: Promise<void>;
  close(): void;
}

/** The Docker operations a worker needs. Errors are `CtfleetError`s with stable codes. */
/** A file written into a container before it starts (a flag with File delivery). */
export interface ContainerFile {
  /** Absolute path in the container. */
  path: string;
  content: string;
  /** Permission bits: 0o444, readable by the challenge's user, writable by nobody. */
  mode: number;
}

/** A network ctfleet made on a node, as the engine reports it. */
export interface NetworkInfo {
  id: string;
  name: string;
  labels: Record<string, string>;
  /** Containers attached to it now. */
  containers: number;
}

/** A bridge network for instances: inter-container traffic off, an explicit subnet. */
export interface NetworkDefinition {
  name: string;
  /** The Linux bridge's name (at most 15 characters); firewall rules match on it. */
  bridge: string;
  subnet: string;
  /** Whether outbound traffic is masqueraded to the node's address. */
  masquerade: boolean;
  labels: Record<string, string>;
}

/** The engine's networks, as the node's isolation needs them. */
export interface NetworkRuntime {
  /** Networks carrying ctfleet's managed-by label. */
  listManagedNetworks(): Promise<NetworkInfo[]>;
  /** Creates the network; one of that name already there is success. */
  createNetwork(definition: NetworkDefinition): Promise<void>;
  /** Removing a missing network succeeds; one still in use fails with code `NetworkInUse`. */
  removeNetwork(id: string): Promise<void>;
  /**
   * The engine's default network: its Linux bridge (`docker0` unless dockerd runs
   * with --bridge) and the names of the containers on it. Fails permanently when
   * the engine has none.
   */
  inspectDefaultBridge(): Promise<{ bridge: string; containers: string[] }>;
  /** A container's labels, or undefined when it is gone. */
  labelsOf(container: string): Promise<Record<string, string> | undefined>;
}

/** Which network a container of a given egress joins, made ready on first use. */
export interface InstanceNetworks {
  networkFor(egress: Egress): Promise<{ name: string; dns: string[] }>;
  /** A create found the network gone: look again before the next one. */
  invalidate(): void;
}

/**
 * Closes host ports to the outside: idle pool containers publish their ports
 * from the start, but no connection may reach one before a team has claimed it
 * (whoever got in first could wait there for the flag).
 */
export interface PortGuard {
  /** Resolves once exactly these host ports are closed (the last call wins). */
  guard(ports: ReadonlySet<number>): Promise<void>;
}

/** A chain of the host's filter table that jumps to one of ctfleet's chains. */
export interface FirewallHook {
  /** The chain jumped from: DOCKER-USER (forwarded traffic) or INPUT (traffic to the node). */
  from: string;
  /** ctfleet's chain it jumps to. */
  to: string;
}

/** ctfleet's part of the host's filter table, as `iptables-save` prints it. */
export interface FirewallState {
  /** Rules of each of ctfleet's chains, without the `-A CHAIN ` prefix; a missing chain is absent. */
  chains: Record<string, string[]>;
  /** How many times each hook's jump appears, keyed `from>to`. */
  jumps: Record<string, number>;
  /** Chains of the table that exist (ctfleet's and the hooks'). */
  existing: string[];
}

/** The host's IPv4 filter table, for the node's isolation rules. */
export interface Firewall {
  read(chains: readonly string[], hooks: readonly FirewallHook[]): Promise<FirewallState>;
  /** Replaces the rules of the given chains at once (creating them), leaving every other chain alone. */
  replaceChains(rules: Record<string, readonly string[]>): Promise<void>;
  insertJump(hook: FirewallHook): Promise<void>;
  deleteJump(hook: FirewallHook): Promise<void>;
  /** Whether traffic between two ports of a Linux bridge passes these rules (br_netfilter's bridge-nf-call-iptables). */
  filtersBridgedTraffic(): Promise<boolean>;
}

export interface ContainerRuntime {
  ensureImage(image: string, policy: PullPolicy): Promise<void>;
  find(name: string): Promise<ContainerInfo | undefined>;
  /** Creates and starts; fails with code `NameInUse` when the name is taken. */
  createAndStart(definition: ContainerDefinition): Promise<ContainerInfo>;
  start(id: string): Promise<void>;
  /** Stopping a stopped or missing container succeeds. */
  stop(id: string): Promise<void>;
  /** Removing a missing container succeeds. */
  remove(id: string): Promise<void>;
  /** Every container carrying ctfleet's labels; with `uid`, only that instance's; with `pool`, only pool containers. */
  listManaged(filter?: { uid?: string; pool?: boolean }): Promise<ContainerInfo[]>;
  /**
   * Renames a container found by `from` (its id or current name). Fails with
   * `ContainerGone` when nothing answers to `from`, `NameInUse` when `to` is taken.
   */
  rename(from: string, to: string): Promise<void>;
  /** Writes files into a container, running or not (into its volumes when the root is read-only). */
  writeFiles(id: string, files: readonly ContainerFile[]): Promise<void>;
  /** The last lines the container wrote, for failure messages. */
  logTail(id: string, lines: number): Promise<string>;
  /** Follows Docker's events for ctfleet containers that exit or are removed. */
  watchExits(onExit: (exit: ContainerExit) => void): Promise<EventWatch>;
}
