import type { Challenge } from '../domain/challenge.ts';
import type { ChallengeCache, ChallengeSource } from '../domain/ports.ts';

/**
 * Challenges for the node reconciler's passes: from the worker's watch of
 * Challenges (the pool keeper's) once it has listed, else, and for any
 * Challenge it does not hold (created a moment ago), read from the API server.
 * Either way what runs comes from the API server, never from a job's payload;
 * the watch spares a start one request.
 */
export class ChallengeLookup implements ChallengeSource {
  private readonly cache: ChallengeCache;
  private readonly source: ChallengeSource;

  constructor(cache: ChallengeCache, source: ChallengeSource) {
    this.cache = cache;
    this.source = source;
  }

  async get(namespace: string, name: string): Promise<Challenge | undefined> {
    const cached = this.cache.hasSynced() ? this.cache.get(`${namespace}/${name}`) : undefined;
    return cached ?? this.source.get(namespace, name);
  }
}
