import { createHash } from 'node:crypto';
import type { InstanceSpec, SecuritySpec } from './challenge-instance.ts';

/** JSON with object keys sorted at every level: the same value always gives the same text. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, item]) => item !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The security settings that change the container, or undefined when they ask
 * for nothing: a spec written before `security` existed, or with `security: {}`,
 * `readOnlyRootFilesystem: false` or empty lists, keeps its hash and its container.
 */
function securityShape(security: SecuritySpec | undefined): object | undefined {
  if (security === undefined) return undefined;
  const add = security.capabilities?.add ?? [];
  const tmpfs = security.tmpfs ?? [];
  const shape = {
    capabilities: add.length === 0 ? undefined : [...add].sort(),
    readOnlyRootFilesystem: security.readOnlyRootFilesystem === true ? true : undefined,
    tmpfs: tmpfs.length === 0 ? undefined : tmpfs,
    runtime: security.runtime,
  };
  return Object.values(shape).some((value) => value !== undefined) ? shape : undefined;
}

/**
 * Hash of everything that shapes the container; a change means replace it.
 * Canonical, so a spec read from the API server (keys sorted) and one parsed from
 * a job payload (keys in schema order) hash alike.
 */
export function specHash(spec: InstanceSpec): string {
  const shape = {
    image: spec.image,
    ports: spec.ports,
    env: spec.env ?? [],
    command: spec.command ?? [],
    args: spec.args ?? [],
    resources: spec.resources ?? {},
    // Absent from specs that name no egress, so their hashes stay as they were.
    network: spec.network,
    // An instance of a Challenge: which one (its container comes from there).
    challengeRef: spec.challengeRef,
    security: securityShape(spec.security),
  };
  return createHash('sha256').update(canonicalJson(shape)).digest('hex').slice(0, 16);
}
