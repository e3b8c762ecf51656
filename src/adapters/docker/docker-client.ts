import Docker from 'dockerode';
import type { DockerConfig } from '../../config/config.ts';

/** Creates a dockerode client for the configured engine. Does no I/O. */
export function createDockerClient(config: DockerConfig): Docker {
  if (config.kind === 'socket') return new Docker({ socketPath: config.socketPath });
  return new Docker({ protocol: config.protocol, host: config.host, port: config.port });
}
