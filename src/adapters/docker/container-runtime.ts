import type Docker from 'dockerode';
import { CtfleetError, notFound, permanent, transient } from '../../domain/errors.ts';
import type { PullPolicy } from '../../domain/challenge-instance.ts';
import { LABELS, MANAGED_BY } from '../../domain/names.ts';
import { POOL_LABEL } from '../../domain/pool.ts';
import type { ContainerDefinition, ContainerExit, ContainerFile, ContainerInfo, ContainerRuntime, EventWatch } from '../../domain/ports.ts';
import { posix } from 'node:path';
import { dockerMessage, statusOf } from './docker-errors.ts';
import { tarOf } from './tar.ts';

const IMAGE_MEMO_MS = 30_000;
const EVENTS_CONNECT_TIMEOUT_MS = 10_000;

/** {@link ContainerRuntime} over dockerode. */
export class DockerRuntime implements ContainerRuntime {
  private readonly docker: Docker;
  private readonly events: Docker;
  private readonly imagesSeen = new Map<string, number>();

  /** `events`: a client without an idle timeout for the event stream (default: `docker`). */
  constructor(docker: Docker, events: Docker = docker) {
    this.docker = docker;
    this.events = events;
  }

  async ensureImage(image: string, policy: PullPolicy): Promise<void> {
    // Presence is remembered briefly: a burst of starts of one challenge inspects
    // its image once. A create that then finds the image gone fails ImageNotPresent.
    const seen = this.imagesSeen.get(image);
    if (policy !== 'Always' && seen !== undefined && Date.now() - seen < IMAGE_MEMO_MS) return;
    const present = await this.docker
      .getImage(image)
      .inspect()
      .then(() => true)
      .catch((error: unknown) => {
        if (statusOf(error) === 404) return false;
        throw transient('DockerUnavailable', `inspect image ${image}: ${dockerMessage(error)}`, error);
      });
    if (policy === 'Never') {
      if (!present) throw permanent('ImageNotPresent', `Image ${image} is not present on the node and imagePullPolicy is Never.`);
    } else if (!present || policy === 'Always') {
      await this.pull(image);
    }
    this.imagesSeen.set(image, Date.now());
  }

  /**
   * `docker.pull` resolves when the stream starts; failures arrive inside the
   * progress events, so the whole stream is followed and checked.
   */
  private async pull(image: string): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await this.docker.pull(image));
    } catch (error) {
      const status = statusOf(error);
      if (status === 404 || status === 400 || status === 403 || status === 401) {
        throw permanent('ImagePullFailed', `Pulling image ${image} failed: ${dockerMessage(error)}`, error);
      }
      throw transient('ImagePullFailed', `Pulling image ${image} failed: ${dockerMessage(error)}`, error);
    }
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (error: Error | null, events: { error?: string; errorDetail?: { message?: string } }[]) => {
          const failed = events.find((event) => event.error !== undefined || event.errorDetail !== undefined);
          if (error !== null || failed !== undefined) {
            const detail = failed?.errorDetail?.message ?? failed?.error ?? error?.message ?? 'unknown error';
            reject(permanent('ImagePullFailed', `Pulling image ${image} failed: ${detail}`, error ?? undefined));
          } else {
            resolve();
          }
        },
      );
    });
  }

  async find(name: string): Promise<ContainerInfo | undefined> {
    try {
      const inspected = await this.docker.getContainer(name).inspect();
      return {
        id: inspected.Id,
        name: inspected.Name.replace(/^\//, ''),
        running: inspected.State.Running,
        exitCode: inspected.State.Running ? undefined : inspected.State.ExitCode,
        labels: inspected.Config.Labels,
        hostPorts: parseHostPorts(inspected.Config.Labels[LABELS.hostPorts]),
        ipAddress: bridgeAddress(inspected),
        oomKilled: inspected.State.OOMKilled,
        ...(inspected.HostConfig.Memory === undefined || inspected.HostConfig.Memory <= 0 ? {} : { memoryBytes: inspected.HostConfig.Memory }),
        createdAt: Date.parse(inspected.Created),
      };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw transient('DockerUnavailable', `inspect container ${name}: ${dockerMessage(error)}`, error);
    }
  }

  async createAndStart(definition: ContainerDefinition): Promise<ContainerInfo> {
    const exposed: Record<string, object> = {};
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const port of definition.ports) {
      const key = `${port.containerPort}/${port.protocol.toLowerCase()}`;
      exposed[key] = {};
      bindings[key] = [{ HostIp: definition.bindAddress, HostPort: String(port.hostPort) }];
    }
    const labels = {
      ...definition.labels,
      [LABELS.managedBy]: MANAGED_BY,
      [LABELS.hostPorts]: definition.ports.map((port) => port.hostPort).join(','),
    };
    let container: Docker.Container;
    try {
      const options: Docker.ContainerCreateOptions = {
        name: definition.name,
        Image: definition.image,
        Env: definition.env,
        Labels: labels,
        ExposedPorts: exposed,
        HostConfig: {
          PortBindings: bindings,
          RestartPolicy: { Name: 'no' },
          // Docker's init as PID 1 forwards SIGTERM (a challenge server as PID 1
          // usually ignores it, so every stop waited out the grace period) and
          // reaps the zombies of fork-per-connection challenges.
          Init: true,
          NanoCpus: definition.nanoCpus,
          Memory: definition.memoryBytes,
          MemorySwap: definition.memoryBytes,
          PidsLimit: definition.pidsLimit,
          ReadonlyRootfs: definition.readOnlyRootFilesystem,
          // Writable scratch space, sized; nothing written there runs (noexec) or
          // gains privileges (nosuid, nodev). Its pages count against Memory too.
          Tmpfs: Object.fromEntries(definition.tmpfs.map((mount) => [mount.path, `rw,noexec,nosuid,nodev,size=${mount.sizeBytes}`])),
          ...(definition.runtime === undefined ? {} : { Runtime: definition.runtime }),
          CapDrop: ['ALL'],
          CapAdd: definition.capabilities,
          // Seccomp and AppArmor stay at Docker's defaults: nothing here turns them off.
          SecurityOpt: ['no-new-privileges:true'],
          Ulimits: [{ Name: 'nofile', Soft: definition.nofile, Hard: definition.nofile }],
          LogConfig: { Type: 'json-file', Config: { 'max-size': definition.log.maxSize, 'max-file': String(definition.log.maxFiles) } },
          // One of the node's instance networks (inter-container traffic off, the
          // worker's firewall rules around it); IPv6 off inside, where no rule looks.
          NetworkMode: definition.network,
          // A volume of its own for each directory files are written to: Docker
          // writes into a volume even when the root filesystem is read-only.
          ...(mountsOf(definition).length === 0 ? {} : { Mounts: mountsOf(definition) }),
          Sysctls: { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' },
          ...(definition.dns.length > 0 ? { Dns: definition.dns } : {}),
        },
      };
      if (definition.command !== undefined && definition.command.length > 0) options.Entrypoint = definition.command;
      if (definition.args !== undefined && definition.args.length > 0) options.Cmd = definition.args;
      container = await this.docker.createContainer(options);
    } catch (error) {
      const status = statusOf(error);
      if (status === 409) throw new CtfleetError('NameInUse', 'conflict', `Container name ${definition.name} is in use.`, { cause: error });
      if (status === 404 && /network/i.test(dockerMessage(error))) {
        throw transient('NetworkUnavailable', `Network ${definition.network} of ${definition.name} is missing: ${dockerMessage(error)}`, error);
      }
      if (status === 404) {
        this.imagesSeen.delete(definition.image);
        throw permanent('ImageNotPresent', `Image ${definition.image} is not present on the node.`, error);
      }
      // Allowed by the deployment but not registered with this engine (Docker 20–24:
      // "Unknown runtime specified runsc", 25+: "unknown or invalid runtime name").
      if (status === 400 && definition.runtime !== undefined && /unknown runtime|invalid runtime/i.test(dockerMessage(error))) {
        throw permanent(
          'UnknownRuntime',
          `The Docker engine on this node has no runtime ${definition.runtime} (spec.security.runtime): register it with the engine on every node, or take it off CTFLEET_ALLOWED_RUNTIMES. Docker said: ${dockerMessage(error)}`,
          error,
        );
      }
      if (status === 400) throw permanent('ContainerCreateFailed', `Docker refused the container: ${dockerMessage(error)}`, error);
      throw transient('DockerUnavailable', `create container ${definition.name}: ${dockerMessage(error)}`, error);
    }
    try {
      await this.putFiles(container, definition.files);
      await container.start();
    } catch (error) {
      const message = dockerMessage(error);
      await container.remove({ force: true, v: true }).catch(() => undefined);
      if (/port is already allocated|address already in use/i.test(message)) {
        throw new CtfleetError('PortConflict', 'conflict', `A host port of ${definition.name} is taken: ${message}`, { cause: error });
      }
      if (statusOf(error) === 400 || statusOf(error) === 500) {
        throw permanent('ContainerCreateFailed', `Starting container ${definition.name} failed: ${message}`, error);
      }
      throw transient('DockerUnavailable', `start container ${definition.name}: ${message}`, error);
    }
    return {
      id: container.id,
      name: definition.name,
      running: true,
      exitCode: undefined,
      labels,
      hostPorts: definition.ports.map((port) => port.hostPort),
      createdAt: Date.now(),
    };
  }

  async writeFiles(id: string, files: readonly ContainerFile[]): Promise<void> {
    try {
      await this.putFiles(this.docker.getContainer(id), files);
    } catch (error) {
      if (statusOf(error) === 404) throw notFound('ContainerGone', `container ${id} is gone`, error);
      throw transient('DockerUnavailable', `write files into container ${id}: ${dockerMessage(error)}`, error);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    try {
      await this.docker.getContainer(from).rename({ name: to });
    } catch (error) {
      const status = statusOf(error);
      if (status === 404) throw notFound('ContainerGone', `container ${from} is gone`, error);
      if (status === 409) throw new CtfleetError('NameInUse', 'conflict', `Container name ${to} is in use.`, { cause: error });
      throw transient('DockerUnavailable', `rename container ${from} to ${to}: ${dockerMessage(error)}`, error);
    }
  }

  /** Writes files into a container, one archive per directory. */
  private async putFiles(container: Docker.Container, files: readonly ContainerFile[]): Promise<void> {
    const byDirectory = new Map<string, { name: string; content: Buffer; mode: number }[]>();
    for (const file of files) {
      const directory = posix.dirname(file.path);
      byDirectory.set(directory, [...(byDirectory.get(directory) ?? []), { name: posix.basename(file.path), content: Buffer.from(file.content), mode: file.mode }]);
    }
    for (const [directory, files] of byDirectory) {
      await container.putArchive(tarOf(files), { path: directory });
    }
  }

  async start(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (error) {
      const status = statusOf(error);
      if (status === 304) return;
      if (status === 404) throw notFound('ContainerGone', `container ${id} is gone`, error);
      const message = dockerMessage(error);
      if (/port is already allocated|address already in use/i.test(message)) {
        throw new CtfleetError('PortConflict', 'conflict', `A host port of container ${id} is taken: ${message}`, { cause: error });
      }
      throw transient('DockerUnavailable', `start container ${id}: ${message}`, error);
    }
  }

  async stop(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: 5 });
    } catch (error) {
      const status = statusOf(error);
      if (status === 304 || status === 404) return;
      throw transient('DockerUnavailable', `stop container ${id}: ${dockerMessage(error)}`, error);
    }
  }

  async remove(id: string): Promise<void> {
    try {
      // v: its own volumes (a flag file's) go with it.
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (error) {
      const status = statusOf(error);
      if (status === 404) return;
      // 409 "removal already in progress" ends in the state we want.
      if (status === 409 && /already in progress/i.test(dockerMessage(error))) return;
      throw transient('DockerUnavailable', `remove container ${id}: ${dockerMessage(error)}`, error);
    }
  }

  async listManaged(filter: { uid?: string; pool?: boolean } = {}): Promise<ContainerInfo[]> {
    const labels = [`${LABELS.managedBy}=${MANAGED_BY}`];
    if (filter.uid !== undefined) labels.push(`${LABELS.uid}=${filter.uid}`);
    if (filter.pool === true) labels.push(POOL_LABEL);
    try {
      const containers = await this.docker.listContainers({ all: true, filters: { label: labels } });
      return containers.map((container) => ({
        id: container.Id,
        name: (container.Names[0] ?? '').replace(/^\//, ''),
        running: container.State === 'running',
        exitCode: undefined,
        labels: container.Labels,
        hostPorts: parseHostPorts(container.Labels[LABELS.hostPorts]),
        createdAt: container.Created * 1000,
      }));
    } catch (error) {
      throw transient('DockerUnavailable', `list containers: ${dockerMessage(error)}`, error);
    }
  }

  async watchExits(onExit: (exit: ContainerExit) => void): Promise<EventWatch> {
    let stream: NodeJS.ReadableStream;
    let timer: NodeJS.Timeout | undefined;
    try {
      // An engine that accepts the connection before it serves would never answer:
      // the caller retries instead of waiting for ever.
      let timedOut = false;
      const opening = this.events.getEvents({
        filters: { type: ['container'], event: ['die', 'destroy'], label: [`${LABELS.managedBy}=${MANAGED_BY}`] },
      });
      // A stream that answers after the timeout is closed at once.
      void opening.then((late) => {
        if (timedOut) (late as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      }, () => undefined);
      stream = await Promise.race([
        opening,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => {
            timedOut = true;
            reject(new Error(`no answer within ${EVENTS_CONNECT_TIMEOUT_MS / 1000} s`));
          }, EVENTS_CONNECT_TIMEOUT_MS);
        }),
      ]);
    } catch (error) {
      throw transient('DockerUnavailable', `follow Docker events: ${dockerMessage(error)}`, error);
    } finally {
      clearTimeout(timer);
    }
    // Events arrive as JSON lines that chunks may split anywhere.
    let pending = '';
    stream.on('data', (chunk: Buffer | string) => {
      pending += chunk.toString();
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
        if (line === '') continue;
        const exit = parseExitEvent(line);
        if (exit !== undefined) onExit(exit);
      }
    });
    const ended = new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => {
        resolve();
      });
    });
    return {
      ended,
      close: () => {
        (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      },
    };
  }

  async logTail(id: string, lines: number): Promise<string> {
    try {
      const buffer = await this.docker.getContainer(id).logs({ stdout: true, stderr: true, tail: lines, follow: false });
      return demultiplex(buffer).trim();
    } catch {
      return '';
    }
  }
}

function parseExitEvent(line: string): ContainerExit | undefined {
  try {
    const event = JSON.parse(line) as { Action?: string; id?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
    const action = event.Action;
    if (action !== 'die' && action !== 'destroy') return undefined;
    const attributes = event.Actor?.Attributes ?? {};
    const code = attributes.exitCode === undefined ? undefined : Number(attributes.exitCode);
    return { id: event.Actor?.ID ?? event.id ?? '', action, labels: attributes, exitCode: Number.isInteger(code) ? code : undefined };
  } catch {
    return undefined;
  }
}

function bridgeAddress(inspected: Docker.ContainerInspectInfo): string | undefined {
  const first = Object.values(inspected.NetworkSettings.Networks).find((network) => network.IPAddress !== '');
  return first?.IPAddress;
}

/** A volume of the container's own for each directory its files go to; the definition's read-only binds. */
function mountsOf(definition: ContainerDefinition): Docker.MountSettings[] {
  const volumes = [...new Set(definition.files.map((file) => posix.dirname(file.path)))].map((target): Docker.MountSettings => ({ Type: 'volume', Source: '', Target: target }));
  const binds = (definition.binds ?? []).map((bind): Docker.MountSettings => ({ Type: 'bind', Source: bind.source, Target: bind.target, ReadOnly: true }));
  return [...volumes, ...binds];
}

function parseHostPorts(value: string | undefined): number[] {
  if (value === undefined || value === '') return [];
  return value.split(',').map(Number).filter((port) => Number.isInteger(port) && port > 0);
}

/**
 * Non-TTY logs come multiplexed: 8-byte frame headers (stream, 0, 0, 0, size BE32).
 * Falls back to the raw text if the buffer is not framed.
 */
export function demultiplex(buffer: Buffer): string {
  const parts: string[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const stream = buffer[offset];
    if (stream !== 0 && stream !== 1 && stream !== 2) return buffer.toString('utf8');
    const size = buffer.readUInt32BE(offset + 4);
    parts.push(buffer.subarray(offset + 8, offset + 8 + size).toString('utf8'));
    offset += 8 + size;
  }
  return parts.join('');
}
