import Docker from 'dockerode';
import type { DockerConfig } from '../../config/config.ts';

/**
 * Creates a dockerode client for the configured engine. Does no I/O.
 * `idleTimeoutMs`: a request whose connection stays silent that long is aborted
 * (an engine that stops mid-request, or accepts before it serves, would otherwise
 * hold it forever). Leave it unset for long-lived streams such as events.
 */
export function createDockerClient(config: DockerConfig, options: { idleTimeoutMs?: number } = {}): Docker {
  const timeout = options.idleTimeoutMs === undefined ? {} : { timeout: options.idleTimeoutMs };
  if (config.kind === 'socket') return new Docker({ socketPath: config.socketPath, ...timeout });
  return new Docker({ protocol: config.protocol, host: config.host, port: config.port, ...timeout });
}
