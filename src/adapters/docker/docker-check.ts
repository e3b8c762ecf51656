import type Docker from 'dockerode';
import type { DependencyCheck } from '../../health/dependency-check.ts';

/** Reports the Docker engine's version and API version. */
export function dockerCheck(docker: Docker): DependencyCheck {
  return async () => {
    const version = await docker.version();
    return { name: 'docker', healthy: true, detail: `engine ${version.Version} (API ${version.ApiVersion}, ${version.Os}/${version.Arch})` };
  };
}
