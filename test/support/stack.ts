import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';
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

/**
 * Polls `probe` until it returns a value other than undefined, or fails after
 * `timeoutMs`. An attempt that never settles (a request to a component that
 * accepted the connection and went quiet) is cut at the deadline too, so a
 * hung probe fails the test with its name instead of holding it until the
 * runner's own timeout cancels it without a word.
 */
export async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      // A slow attempt near the deadline still gets 15 s: only one that never ends is cut.
      const value = await withinMs(Math.max(deadline - Date.now(), 15_000), probe());
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

/** `promise`, or a rejection naming the wait once `ms` have passed without it settling. */
function withinMs<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`an attempt was still unanswered after ${String(ms)} ms`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    clearTimeout(timer);
  });
}

/**
 * Listens on `host:port`, rejecting when the port cannot be had (EADDRINUSE)
 * instead of leaving the caller waiting on a callback that never comes.
 */
export async function listen(server: Server, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await listen(server, 0, '127.0.0.1');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** GET `/readyz` of a ctfleet process: its status code and the names of the failing checks. */
export async function readiness(port: number): Promise<{ status: number; failing: string[] }> {
  const response = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5_000) });
  const body = (await response.json()) as { checks: { name: string; healthy: boolean }[] };
  return { status: response.status, failing: body.checks.filter((check) => !check.healthy).map((check) => check.name) };
}
