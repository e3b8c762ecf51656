/**
 * Runs `work` once for each index from 0 to `count` - 1, at most `limit` at once:
 * each lane takes the next index as soon as its last one is done.
 */
export async function inParallel(count: number, limit: number, work: (index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) await work(next++);
    }),
  );
}
