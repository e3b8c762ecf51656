import type { KubeConfig } from '@kubernetes/client-node';
import type { ChallengeInstance } from '../../domain/challenge-instance.ts';
import { PLURAL } from '../../domain/names.ts';
import type { InstanceCache } from '../../domain/ports.ts';
import type { Logger } from '../../observability/logger.ts';
import { toInstance } from './instance-object.ts';
import { KubeObjectCache } from './object-cache.ts';

/** The controller's cache of ChallengeInstances (see {@link KubeObjectCache} for its guarantees). */
export class KubeInstanceCache extends KubeObjectCache<ChallengeInstance> implements InstanceCache {
  constructor(kubeConfig: KubeConfig, logger: Logger, namespaces: readonly string[] = []) {
    super(kubeConfig, logger, namespaces, { plural: PLURAL, kind: 'ChallengeInstance', convert: toInstance });
  }
}
