import type { InstanceSpec } from '../domain/challenge-instance.ts';
import { CtfleetError, permanent } from '../domain/errors.ts';
import type { HardeningProfile } from '../domain/hardening.ts';
import { isImageAllowed } from '../domain/image-policy.ts';
import type { JobTarget } from '../domain/jobs.ts';
import { containerName, LABELS } from '../domain/names.ts';
import type { ContainerFile } from '../domain/ports.ts';
import { egressOf, type Egress } from '../domain/isolation.ts';
import type { Clock, ContainerDefinition, ContainerInfo, ContainerRuntime, InstanceNetworks, PoolFiles } from '../domain/ports.ts';
import { POOL_FILES_LABEL, poolContainerName, type ClaimRecord } from '../domain/pool.ts';
import { posix } from 'node:path';
import type { Logger } from '../observability/logger.ts';
import { boundLines, boundText } from '../domain/conditions.ts';
import { formatBytes } from '../domain/quantities.ts';
import { specHash } from '../domain/spec-hash.ts';
import { containerDefinition, poolContainerDefinition, probeHost } from './container-shape.ts';
import type { ClaimBook } from './claim-book.ts';
import { oomKilledPhrase } from './node-plan.ts';
import type { PortAllocator } from './port-allocator.ts';
import { NodeListing } from './node-listing.ts';
import { canConnect, probeDelayMs } from './readiness.ts';

export interface ContainerSettings {
  node: string;
  /** Host address Docker publishes ports on. */
  bindAddress: string;
  readinessTimeoutMs: number;
  /** What every container gets, whatever its spec says. */
  hardening: HardeningProfile;
  /** Glob patterns of the images challenges may run (CTFLEET_ALLOWED_IMAGES); empty: none. */
  allowedImages: readonly string[];
  /** Egress of an instance whose spec names none (CTFLEET_DEFAULT_EGRESS). */
  defaultEgress: Egress;
  /**
   * A container the engine refused to start is replaced only when it still
   * refuses this long after the first refusal, with the engine reachable all along.
   */
  refusalSettleMs?: number;
}

/** Run this instance's container: adopt, start, replace or create it, then wait until it is ready. */
export interface RunRequest {
  target: JobTarget;
  spec: InstanceSpec;
  /** The instance's container on this node as last observed, if any. */
  existing: ContainerInfo | undefined;
  /** Host ports to keep when they are free: a re-created container keeps its endpoints. */
  preferredPorts: readonly number[];
  /**
   * The hash of the instance's stored spec, which labels the container (`spec` is
   * the effective one, its Challenge's for a `challengeRef`); default: `spec`'s.
   */
  specHash?: string;
  /** The Challenge generation `spec` was resolved from. */
  challengeGeneration?: number | undefined;
  /** Files to write into the container before it starts (a flag with File delivery). */
  files?: ContainerFile[];
  /**
   * A start asked for (a start job, not a crash restart or an engine's return): a
   * stopped container made from an older Challenge generation than
   * `challengeGeneration` is replaced rather than started again.
   */
  renewGeneration?: boolean;
}

export interface RunResult {
  /** `adopted`: it already ran as asked; `started`: ctfleet started or created it; `claimed`: a warm pool container became it. */
  outcome: 'started' | 'adopted' | 'claimed';
  container: ContainerInfo;
}

/** Make one idle container of a pooled Challenge (docs/pools.md). */
export interface PoolMemberRequest {
  namespace: string;
  challenge: string;
  generation: number;
  /** The Challenge's container as an instance would get it, without a team or a flag. */
  spec: InstanceSpec;
  /** Makes its name unique: `ctfpool-<namespace>_<challenge>-<suffix>`. */
  suffix: string;
  /** Where the claim's files go in the container (the flag's directory); undefined: no files. */
  filesDir: string | undefined;
  /** Called with the host ports before the container exists: the pool guard closes them first. */
  beforeCreate: (hostPorts: readonly number[]) => Promise<void>;
}

/** Job progress, as `{percent, step}`: recorded in the background (see {@link JobContext}). */
export type Progress = (percent: number, step: string) => void;

/**
 * How old a listing of the node's containers may be to serve port allocation. Safe
 * while below the allocator's commit grace (60 s, port-allocator.ts): a port is
 * reserved from its allocation until 60 s after its container exists, so a container
 * a listing missed is covered for as long as the listing is used. Each listing of 500
 * containers costs dockerd 84 ms of CPU on the node (docs/benchmark.md): the sweep's,
 * every 30 s, usually serves.
 */
const PORT_LISTING_TTL_MS = 30_000;
/** A container's output quoted in a failure: its last words, leaving room in the message for what happened. */
const MAX_OUTPUT_BYTES = 768;
const DEFAULT_REFUSAL_SETTLE_MS = 10_000;

/**
 * The container operations of one node: each returns what it achieved or throws a
 * {@link CtfleetError}, and none writes status (the reporter does).
 *
 * Guarantees: every operation is idempotent. The container name is deterministic
 * and labelled with the instance uid and spec hash, so a repeated run adopts what
 * is already there, and stop or remove of something gone succeed.
 */
export class ContainerOperations {
  private readonly runtime: ContainerRuntime;
  private readonly ports: PortAllocator;
  private readonly settings: ContainerSettings;
  private readonly clock: Clock;
  private readonly networks: InstanceNetworks;
  private readonly claims: ClaimBook | undefined;
  private readonly poolFiles: PoolFiles | undefined;
  /** The node's containers as last listed, shared with the sweep and the heartbeat. */
  private readonly listing: NodeListing;
  /** Containers the engine refused to start, and when it first refused. */
  private readonly refusedStarts = new Map<string, number>();

  constructor(deps: { runtime: ContainerRuntime; ports: PortAllocator; networks: InstanceNetworks; settings: ContainerSettings; clock: Clock; claims?: ClaimBook; poolFiles?: PoolFiles; listing?: NodeListing }) {
    this.runtime = deps.runtime;
    this.listing = deps.listing ?? new NodeListing(deps.runtime, deps.clock);
    this.claims = deps.claims;
    this.poolFiles = deps.poolFiles;
    this.networks = deps.networks;
    this.ports = deps.ports;
    this.settings = deps.settings;
    this.clock = deps.clock;
  }

  /**
   * This node's containers of one instance (on an engine shared by several
   * workers, only this worker's). `only`: just the container of that name, one
   * inspect instead of a listing (the hot path of jobs; a sweep or an event looks
   * at every container of the uid and finds duplicates). `died`: Docker just
   * said one of them died.
   */
  async observe(uid: string, only?: string, died = false): Promise<ContainerInfo[]> {
    const found = only === undefined
      ? [...(await this.runtime.listManaged({ uid })), ...(await this.claimedBy(uid))]
      : [await this.runtime.find(only)].filter((container) => container !== undefined);
    const ours = found.map((container) => this.withClaim(container)).filter((container) => container.labels[LABELS.uid] === uid && container.labels[LABELS.node] === this.settings.node);
    // A listing does not say how a container ended, and just after a `die` event
    // it may still say running: those are inspected (running or not, exit code,
    // whether the OOM killer ended it, memory limit).
    return Promise.all(ours.map(async (container) => (only !== undefined || (container.running && !died) ? container : ((await this.runtime.find(container.id)) ?? container))));
  }

  async stop(container: ContainerInfo): Promise<void> {
    await this.runtime.stop(container.id);
  }

  async remove(container: ContainerInfo): Promise<void> {
    await this.runtime.remove(container.id);
    await this.claims?.forget([container.id]);
    const files = container.labels[POOL_FILES_LABEL];
    if (files !== undefined) await this.poolFiles?.remove(files);
  }

  /** A container with the labels of its claim, when it is a claimed pool container. */
  withClaim(container: ContainerInfo): ContainerInfo {
    return this.claims === undefined ? container : this.claims.apply(container);
  }

  /** Pool containers claimed for the uid: Docker's label filter cannot find them. */
  private async claimedBy(uid: string): Promise<ContainerInfo[]> {
    const ids = this.claims?.idsOf(uid) ?? [];
    const found = await Promise.all(ids.map((id) => this.runtime.find(id)));
    return found.filter((container) => container !== undefined);
  }

  /**
   * Makes one idle pool container: allowed image, host ports closed by the
   * guard before the container exists, created and started like an instance's
   * container (its network, its hardening), then ready.
   */
  async createPoolMember(request: PoolMemberRequest): Promise<ContainerInfo> {
    const { spec } = request;
    this.checkImage(spec.image);
    await this.runtime.ensureImage(spec.image, spec.imagePullPolicy);
    const pool = { namespace: request.namespace, challenge: request.challenge, generation: request.generation, suffix: request.suffix };
    let files: { source: string; target: string } | undefined;
    if (request.filesDir !== undefined) {
      if (this.poolFiles === undefined) throw permanent('PoolFilesUnavailable', 'This worker has no directory for pool containers\' files (CTFLEET_POOL_FILES_DIR).');
      files = { source: await this.poolFiles.prepare(poolContainerName(request.namespace, request.challenge, request.suffix)), target: request.filesDir };
    }
    const container = await this.createWithPorts(spec, [], (placement) =>
      poolContainerDefinition(pool, spec, { node: this.settings.node, bindAddress: this.settings.bindAddress, ...placement }, this.settings.hardening, files),
    request.beforeCreate);
    await this.waitUntilReady(container, spec);
    return container;
  }

  /**
   * Makes an idle pool container the instance's: the claim is recorded first
   * (false: someone else claimed it, nothing was touched), then its files (the
   * flag) are written and it takes the instance's container name.
   */
  async claim(container: ContainerInfo, record: ClaimRecord, files: readonly ContainerFile[]): Promise<ContainerInfo | undefined> {
    if (this.claims === undefined || !(await this.claims.claim(container.id, record))) return undefined;
    if (files.length > 0) {
      // Straight into its files directory, bind-mounted at the flag's directory: no trip through Docker.
      const directory = container.labels[POOL_FILES_LABEL];
      if (directory === undefined || this.poolFiles === undefined) throw permanent('PoolFilesUnavailable', `Pool container ${container.name} has no files directory for the claim's files.`);
      await this.poolFiles.write(directory, files.map((file) => ({ name: posix.basename(file.path), content: file.content, mode: file.mode })));
    }
    const name = containerName(record.namespace, record.name);
    await this.runtime.rename(container.id, name);
    return this.withClaim({ ...container, name });
  }

  /** Whether a container found running (a pool container after a restart) answers as its spec says; one that does not is removed. */
  async isReady(container: ContainerInfo, spec: InstanceSpec): Promise<boolean> {
    try {
      await this.waitUntilReady(container, spec);
      return true;
    } catch {
      return false;
    }
  }

  private checkImage(image: string): void {
    // Before anything touches the engine: an image merely cached on the node is refused too.
    if (!isImageAllowed(image, this.settings.allowedImages)) {
      const list = this.settings.allowedImages.length === 0 ? 'CTFLEET_ALLOWED_IMAGES is empty: no image is allowed until it names some' : `CTFLEET_ALLOWED_IMAGES: ${this.settings.allowedImages.join(', ')}`;
      throw permanent('ImageNotAllowed', `spec.image: ${image} is not on this deployment's image allow-list (${list}).`);
    }
  }

  async run(request: RunRequest, progress: Progress, log: Logger): Promise<RunResult> {
    const { target, spec } = request;
    const hash = request.specHash ?? specHash(spec);
    this.checkImage(spec.image);
    progress(20, 'pulling image');
    await this.runtime.ensureImage(spec.image, spec.imagePullPolicy);
    progress(40, 'creating container');
    let preferred = request.preferredPorts;
    // A stopped container of another Challenge generation than this is replaced, not started again.
    const renewTo = request.renewGeneration === true ? request.challengeGeneration : undefined;
    let result = request.existing === undefined ? undefined : await this.reuse(request.existing, target.uid, hash, log, renewTo);
    if (result === undefined && request.existing !== undefined) preferred = request.existing.hostPorts;
    if (result === undefined) {
      try {
        result = { outcome: 'started', container: await this.createFor(request, preferred) };
      } catch (error) {
        if (!(error instanceof CtfleetError) || error.code !== 'NameInUse') throw error;
        // Made since it was observed, by someone else (another worker on a shared
        // engine, or an instance of the same name with another uid).
        const inspected = await this.runtime.find(containerName(target.namespace, target.name));
        const found = inspected === undefined ? undefined : this.withClaim(inspected);
        result = found === undefined ? undefined : await this.reuse(found, target.uid, hash, log, renewTo);
        if (result === undefined) {
          const ours = found !== undefined && found.labels[LABELS.uid] === target.uid;
          result = { outcome: 'started', container: await this.createFor(request, ours ? found.hostPorts : []) };
        }
      }
    }
    progress(60, 'started');
    progress(70, 'waiting for readiness');
    await this.waitUntilReady(result.container, spec);
    return result;
  }

  /**
   * Keeps a container that is this instance's and of this spec (starting it if it
   * stopped); removes any other. Undefined: make a new one.
   *
   * A running container keeps the Challenge generation it was made from; a stopped
   * one made from an older generation than `challengeGeneration` (given for a start
   * asked for) is not started again but replaced (on its host ports): the start runs
   * the Challenge as it is now, the one its readiness and ports are checked
   * against. Crash restarts and an engine's return start the same container.
   */
  private async reuse(container: ContainerInfo, uid: string, hash: string, log: Logger, challengeGeneration?: number): Promise<RunResult | undefined> {
    if (container.labels[LABELS.uid] === uid && container.labels[LABELS.specHash] === hash) {
      if (container.running) return { outcome: 'adopted', container };
      const madeFrom = container.labels[LABELS.challengeGeneration];
      if (challengeGeneration === undefined || madeFrom === undefined || madeFrom === String(challengeGeneration)) {
        // startAgain false: the engine would not start it, and it was removed.
        if (await this.startAgain(container.id, log)) return { outcome: 'started', container };
        return undefined;
      }
      await this.remove(container);
      log.info({ container: container.id }, `Replaced stopped container ${container.name}: made from Challenge generation ${madeFrom}, which is now ${String(challengeGeneration)}`);
      return undefined;
    }
    await this.remove(container);
    log.info({ container: container.id }, `Removed outdated container ${container.name}`);
    return undefined;
  }

  /**
   * The engine went away: refusals seen so far were an engine on its way down,
   * not containers that cannot start.
   */
  forgetRefusals(): void {
    this.refusedStarts.clear();
  }

  /**
   * Starts a stopped container again; true when it started. An engine stopped
   * mid-start can leave a container that never starts again ("failed to start
   * shim … file exists"): when the engine answers but still refuses to start the
   * same container `refusalSettleMs` after it first refused, the container is
   * removed and false says to make a new one. Earlier refusals are thrown, to be
   * retried: an engine on its way down refuses everything for a few seconds
   * before its event stream ends, and its containers are fine once it is back.
   */
  private async startAgain(id: string, log: Logger): Promise<boolean> {
    try {
      await this.runtime.start(id);
      this.refusedStarts.delete(id);
      return true;
    } catch (error) {
      // Unreachable engine (it cannot inspect the container either): retry later.
      if ((await this.runtime.find(id).catch(() => undefined)) === undefined) throw error;
      const now = this.clock.now();
      const first = this.refusedStarts.get(id);
      if (first === undefined) this.refusedStarts.set(id, now);
      if (first === undefined || now - first < (this.settings.refusalSettleMs ?? DEFAULT_REFUSAL_SETTLE_MS)) throw error;
      this.refusedStarts.delete(id);
      log.warn({ container: id, err: error }, 'The engine keeps refusing to start the container; replacing it');
      await this.runtime.remove(id);
      return false;
    }
  }

  /** The instance's container, created on free host ports. */
  private createFor(request: RunRequest, preferred: readonly number[]): Promise<ContainerInfo> {
    const identity = { specHash: request.specHash ?? specHash(request.spec), challengeGeneration: request.challengeGeneration };
    return this.createWithPorts(request.spec, preferred, (placement) =>
      containerDefinition(request.target, request.spec, { node: this.settings.node, bindAddress: this.settings.bindAddress, ...placement }, this.settings.hardening, identity, request.files));
  }

  /** Allocates host ports and creates the container `define` describes, trying fresh ports if Docker finds one taken. */
  private async createWithPorts(
    spec: InstanceSpec,
    preferred: readonly number[],
    define: (placement: { hostPorts: readonly number[]; network: { name: string; dns: readonly string[] }; egress: Egress }) => ContainerDefinition,
    beforeCreate?: (hostPorts: readonly number[]) => Promise<void>,
  ): Promise<ContainerInfo> {
    if (preferred.length > 0) {
      // Its own ports, from a container that is gone: out of the allocator's
      // recent-use grace, and listed afresh so the listing no longer counts them.
      this.ports.release(preferred);
      this.listing.invalidate();
    }
    const egress = egressOf(spec, this.settings);
    const network = await this.networks.networkFor(egress);
    const inUse = await this.portsInUse();
    let lastConflict: CtfleetError | undefined;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const hostPorts = this.ports.allocate(spec.ports.length, inUse, attempt === 0 ? preferred : []);
      if (hostPorts === undefined) {
        if (lastConflict !== undefined) throw permanent('PortConflict', `${lastConflict.message}; no other free host ports are left in this node's range.`);
        throw permanent('PortsExhausted', `No ${spec.ports.length} free host ports are left in this node's range.`);
      }
      try {
        const definition = define({ hostPorts, network, egress });
        await beforeCreate?.(hostPorts);
        const container = await this.runtime.createAndStart(definition).catch((error: unknown) => {
          if (error instanceof CtfleetError && error.code === 'NetworkUnavailable') this.networks.invalidate();
          throw error;
        });
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
   * Host ports of this node's ctfleet containers, from a listing at most 30 s old
   * (usually the last sweep's). Ports of containers created since are covered by
   * the allocator's commit grace period (60 s), so a stale listing never hands out
   * a used port. Concurrent starts share one listing (when each made its own, a
   * burst of 500 made 0.68 listings per start, docs/benchmark.md).
   */
  private async portsInUse(): Promise<Set<number>> {
    const containers = await this.listing.within(PORT_LISTING_TTL_MS);
    return new Set(containers.flatMap((container) => container.hostPorts));
  }

  /**
   * Ready when every TCP port accepts a connection on the container's own address
   * (Docker's port proxy would accept on the host port even with nothing behind
   * it). UDP cannot be probed: the container staying up counts. A container that
   * exits or never becomes ready is removed, and the failure is permanent.
   */
  private async waitUntilReady(container: ContainerInfo, spec: InstanceSpec): Promise<void> {
    // A Challenge may name its own timeout (spec.readiness); else the deployment's.
    const timeoutMs = spec.readiness?.timeoutSeconds === undefined ? this.settings.readinessTimeoutMs : spec.readiness.timeoutSeconds * 1000;
    const deadline = this.clock.now() + timeoutMs;
    const pending = spec.ports.filter((port) => port.protocol === 'TCP');
    for (let attempt = 0; ; attempt += 1) {
      const inspected = await this.runtime.find(container.id);
      if (inspected === undefined || !inspected.running) {
        // The container's output enters ctfleet here, bounded and stripped of
        // escapes: the message reaches the condition, Events, the job and the API.
        // The last lines, each kept to its end: stdout and stderr reach the log in
        // either order, so one long line must not push out the other's last words.
        const lines = (await this.runtime.logTail(container.id, 5)).split('\n').filter((line) => line.trim() !== '').slice(-3);
        const logs = boundLines(lines, MAX_OUTPUT_BYTES);
        await this.runtime.remove(container.id);
        const said = logs === '' ? '.' : `: ${logs}`;
        if (inspected?.oomKilled === true) {
          const limit = inspected.memoryBytes === undefined ? undefined : formatBytes(inspected.memoryBytes);
          throw permanent('OOMKilled', boundText(`The container ${oomKilledPhrase(limit)} before it became ready (exit code ${inspected.exitCode ?? 137})${said}`));
        }
        const exit = inspected?.exitCode === undefined ? 'exited' : `exited with code ${inspected.exitCode}`;
        throw permanent('ContainerExited', boundText(`The container ${exit} before it became ready${said}`));
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
      if (this.clock.now() > deadline) {
        await this.runtime.remove(container.id);
        throw permanent(
          'ReadinessTimeout',
          `Port${pending.length > 1 ? 's' : ''} ${pending.map((port) => port.containerPort).join(', ')} did not accept connections within ${Math.round(timeoutMs / 1000)} s.`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, probeDelayMs(attempt)));
    }
  }
}
