import { randomBytes } from 'node:crypto';
import { loadConnectionConfig, type ConnectionConfig } from '../../src/config/config.ts';

/**
 * The connection settings of the running local stack, as `hack/stack.sh env`
 * exports them. Integration tests need the real components; without them they
 * fail with this instruction rather than skip.
 */
export function stackConfig(): ConnectionConfig {
  if (process.env.KUBECONFIG === undefined || process.env.REDIS_URL === undefined) {
    throw new Error('The local stack is not in the environment: run `hack/stack.sh up` and `eval "$(hack/stack.sh env)"` first (hack/test.sh does both).');
  }
  return loadConnectionConfig(process.env);
}

/** A short random suffix that keeps test objects of parallel or repeated runs apart. */
export function uniqueSuffix(): string {
  return randomBytes(4).toString('hex');
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} did not happen within ${timeoutMs} ms${lastError === undefined ? '' : `: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)}`}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
