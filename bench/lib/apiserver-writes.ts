import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** One write as the API server's audit log records it (hack/stack.sh writes the policy). */
export interface AuditedWrite {
  /** create, patch, update, delete, deletecollection. */
  verb: string;
  /** `challengeinstances`, `challengeinstances/status`, `events`… */
  resource: string;
  namespace: string;
  /** Empty for a create, whose name is in its body. */
  name: string;
  code: number;
  userAgent: string;
  /** When the API server answered, ms since the epoch. */
  at: number;
}

/** The audit log the local stack's API server writes (`CTFLEET_AUDIT_LOG`, from `hack/stack.sh env`). */
export function auditLogPath(env: NodeJS.ProcessEnv = process.env): string {
  const path = env.CTFLEET_AUDIT_LOG;
  if (path === undefined || path === '') throw new Error('CTFLEET_AUDIT_LOG is not set: run eval "$(bash hack/stack.sh env)" first');
  return path;
}

/**
 * The successful writes in `namespace` the audit log holds (with its one rotated
 * file), oldest first; server-side dry runs are left out.
 */
export async function auditedWrites(namespace: string, path = auditLogPath()): Promise<AuditedWrite[]> {
  // The rotated file (apiserver-<time>.log) first, then the current one.
  const stem = basename(path, '.log');
  const rotated = (await readdir(dirname(path))).filter((name) => name.startsWith(`${stem}-`) && name.endsWith('.log')).sort();
  const texts = await Promise.all([...rotated.map((name) => join(dirname(path), name)), path].map((file) => readFile(file, 'utf8')));
  const writes: AuditedWrite[] = [];
  for (const line of texts.join('\n').split('\n')) {
    if (!line.includes(`"namespace":"${namespace}"`)) continue;
    const event = JSON.parse(line) as {
      verb: string;
      requestURI?: string;
      userAgent?: string;
      objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
      responseStatus?: { code?: number };
      stageTimestamp: string;
    };
    const ref = event.objectRef;
    const code = event.responseStatus?.code ?? 0;
    if (ref?.namespace !== namespace || code < 200 || code >= 300) continue;
    // A server-side dry run (`kubectl create --dry-run=server`) is audited but stores nothing.
    if (/[?&]dryRun=/.test(event.requestURI ?? '')) continue;
    writes.push({
      verb: event.verb,
      resource: `${ref.resource ?? ''}${ref.subresource === undefined ? '' : `/${ref.subresource}`}`,
      namespace,
      name: ref.name ?? '',
      code,
      userAgent: event.userAgent ?? '',
      at: Date.parse(event.stageTimestamp),
    });
  }
  return writes;
}

/** Counts by `resource verb`, e.g. `challengeinstances/status patch`. */
export function countWrites(writes: readonly AuditedWrite[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const write of writes) {
    const key = `${write.resource} ${write.verb}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
