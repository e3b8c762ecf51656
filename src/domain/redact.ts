/** What a dashboard shows in place of a hidden value. */
export const HIDDEN = '[hidden]';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A job's data as a dashboard may show it. Env values, args and command carry
 * flags and secrets: each value is replaced by HIDDEN, and names are kept, so the
 * shape still reads. Anything that is not a job's data comes back unchanged.
 */
export function redactJobData(data: unknown): unknown {
  if (!isRecord(data) || !isRecord(data.spec)) return data;
  const spec: Record<string, unknown> = { ...data.spec };
  if (Array.isArray(spec.env)) {
    spec.env = spec.env.map((variable: unknown) => (isRecord(variable) ? { ...variable, ...('value' in variable ? { value: HIDDEN } : {}) } : HIDDEN));
  }
  for (const field of ['args', 'command'] as const) {
    const value = spec[field];
    if (Array.isArray(value)) spec[field] = value.map(() => HIDDEN);
  }
  return { ...data, spec };
}
