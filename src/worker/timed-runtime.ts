import type { PullPolicy } from '../domain/challenge-instance.ts';
import type { ContainerDefinition, ContainerExit, ContainerFile, ContainerInfo, ContainerRuntime, EventWatch } from '../domain/ports.ts';
import { Metrics } from '../observability/metrics.ts';

/** A {@link ContainerRuntime} that times every Docker call into `ctfleet_docker_operation_duration_seconds`. */
export class TimedRuntime implements ContainerRuntime {
  private readonly inner: ContainerRuntime;
  private readonly metrics: Metrics;

  constructor(inner: ContainerRuntime, metrics: Metrics) {
    this.inner = inner;
    this.metrics = metrics;
  }

  private time<T>(operation: string, work: () => Promise<T>): Promise<T> {
    return Metrics.time(this.metrics.dockerDuration, operation, work);
  }

  ensureImage(image: string, policy: PullPolicy): Promise<void> {
    return this.time('ensure_image', () => this.inner.ensureImage(image, policy));
  }

  find(name: string): Promise<ContainerInfo | undefined> {
    return this.time('inspect', () => this.inner.find(name));
  }

  createAndStart(definition: ContainerDefinition): Promise<ContainerInfo> {
    return this.time('create_start', () => this.inner.createAndStart(definition));
  }

  start(id: string): Promise<void> {
    return this.time('start', () => this.inner.start(id));
  }

  stop(id: string): Promise<void> {
    return this.time('stop', () => this.inner.stop(id));
  }

  remove(id: string): Promise<void> {
    return this.time('remove', () => this.inner.remove(id));
  }

  listManaged(filter?: { uid?: string; pool?: boolean }): Promise<ContainerInfo[]> {
    return this.time('list', () => this.inner.listManaged(filter));
  }

  rename(from: string, to: string): Promise<void> {
    return this.time('rename', () => this.inner.rename(from, to));
  }

  writeFiles(id: string, files: readonly ContainerFile[]): Promise<void> {
    return this.time('write_files', () => this.inner.writeFiles(id, files));
  }

  logTail(id: string, lines: number): Promise<string> {
    return this.time('logs', () => this.inner.logTail(id, lines));
  }

  watchExits(onExit: (exit: ContainerExit) => void): Promise<EventWatch> {
    return this.inner.watchExits(onExit);
  }
}
