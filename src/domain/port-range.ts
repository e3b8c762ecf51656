/** A node's range of host ports for published container ports, inclusive. */
export interface PortRange {
  min: number;
  max: number;
}

/** Parses `30000-32767`; throws a message naming the rule otherwise. */
export function parsePortRange(value: string): PortRange {
  const match = /^(\d{1,5})-(\d{1,5})$/.exec(value);
  const min = Number(match?.[1]);
  const max = Number(match?.[2]);
  if (match === null || min < 1 || max > 65535 || min > max) {
    throw new Error(`must be MIN-MAX with 1 ≤ MIN ≤ MAX ≤ 65535, e.g. 30000-32767; got "${value}"`);
  }
  return { min, max };
}
