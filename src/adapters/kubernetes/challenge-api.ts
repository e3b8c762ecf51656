import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Challenge, ChallengeStatus } from '../../domain/challenge.ts';
import { CHALLENGE_FINALIZER, CHALLENGE_KIND, CHALLENGE_PLURAL } from '../../domain/names.ts';
import type { ChallengeApi, InstanceEvent } from '../../domain/ports.ts';
import { makePooledApiClient } from './api-client.ts';
import { ResourceWriter } from './resource-writer.ts';

/** {@link ChallengeApi}: the controller's writes to Challenges, as `KubeInstanceApi` makes them to instances. */
export class KubeChallengeApi implements ChallengeApi {
  private readonly writer: ResourceWriter;

  constructor(kubeConfig: KubeConfig) {
    this.writer = new ResourceWriter(makePooledApiClient(kubeConfig, CustomObjectsApi), makePooledApiClient(kubeConfig, CoreV1Api), { plural: CHALLENGE_PLURAL, kind: CHALLENGE_KIND });
  }

  addFinalizer(challenge: Challenge): Promise<string | undefined> {
    return this.writer.addFinalizer(challenge.metadata, CHALLENGE_FINALIZER);
  }

  removeFinalizer(challenge: Challenge): Promise<void> {
    return this.writer.removeFinalizer(challenge.metadata, CHALLENGE_FINALIZER);
  }

  applyStatus(challenge: Challenge, fieldManager: string, status: ChallengeStatus): Promise<void> {
    return this.writer.applyStatus(challenge.metadata, fieldManager, status);
  }

  recordEvent(challenge: Challenge, event: InstanceEvent, component: string): Promise<void> {
    return this.writer.recordEvent(challenge.metadata, event, component);
  }
}
