import type { ChallengeInstance, InstanceStatus } from './challenge-instance.ts';
import type { InstanceJob, JobState } from './jobs.ts';

/**
 * The small interfaces the controller and worker need from the outside world.
 * Shaped by the core's needs, implemented by src/adapters.
 */

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

export interface QueuedJob {
  state: JobState | 'missing';
  failedReason?: string;
  attempts?: number;
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
