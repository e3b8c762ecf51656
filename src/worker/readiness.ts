import { connect } from 'node:net';

/** Resolves true if a TCP connection to host:port opens within `timeoutMs`. */
export function canConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.removeAllListeners();
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => {
      done(false);
    });
    socket.once('connect', () => {
      done(true);
    });
    socket.once('error', () => {
      done(false);
    });
  });
}

/** The steady interval between readiness probes of a container that is not ready yet. */
const READINESS_POLL_MS = 150;

/**
 * How long to wait after the `attempt`-th failed probe (0-based): 10, 20, 40,
 * 80 ms, then every {@link READINESS_POLL_MS}. A challenge server usually listens
 * within milliseconds of its container starting, so a first probe that comes too
 * early should not cost a whole interval; one that is slow to start is probed no
 * more often than before after its first 150 ms.
 */
export function probeDelayMs(attempt: number): number {
  return Math.min(READINESS_POLL_MS, 10 * 2 ** attempt);
}
