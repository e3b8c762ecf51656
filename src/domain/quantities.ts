const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/**
 * The value of a Kubernetes quantity (`500m`, `256Mi`, `1.5`, `1e3`), or undefined
 * when the string is not one. The API server validated it already; this is defence
 * against a payload that did not come through it.
 */
export function parseQuantity(value: string): number | undefined {
  const match = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([KMGTPE]i)|([numkMGTPE]?)|[eE]([+-]?\d+))$/.exec(value.trim());
  if (match === null) return undefined;
  const number = Number(match[1]);
  if (match[2] !== undefined) return number * (BINARY[match[2]] ?? Number.NaN);
  if (match[4] !== undefined) return number * 10 ** Number(match[4]);
  return number * (DECIMAL[match[3] ?? ''] ?? Number.NaN);
}

/** Bytes as a Kubernetes quantity in the largest binary unit that divides them: 16777216 → `16Mi`. */
export function formatBytes(bytes: number): string {
  for (const unit of ['Ei', 'Pi', 'Ti', 'Gi', 'Mi', 'Ki']) {
    const size = BINARY[unit] ?? 1;
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

/** Docker's NanoCpus for a CPU quantity: `500m` → 500,000,000. */
export function toNanoCpus(cpu: string): number | undefined {
  const cores = parseQuantity(cpu);
  return cores === undefined || cores <= 0 ? undefined : Math.round(cores * 1e9);
}

/** Bytes for a memory quantity: `256Mi` → 268,435,456. */
export function toBytes(memory: string): number | undefined {
  const bytes = parseQuantity(memory);
  return bytes === undefined || bytes <= 0 ? undefined : Math.floor(bytes);
}
