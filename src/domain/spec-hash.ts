import { createHash } from 'node:crypto';
import type { InstanceSpec } from './challenge-instance.ts';

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
  };
  return createHash('sha256').update(canonicalJson(shape)).digest('hex').slice(0, 16);
}
