/**
 * V8 flags ctfleet's processes run with in production (the image's entrypoint and
 * the benchmark use these; `--optimize-for-size` is not allowed in NODE_OPTIONS, so
 * the entrypoint carries them).
 * - `--max-semi-space-size=1`: a 1 MB young generation makes V8 collect short-lived
 *   garbage (API responses, job payloads) early instead of growing the heap: it
 *   cost no measurable throughput and keeps each process's RSS down.
 * - `--optimize-for-size`: V8 grows the old generation slowly and collects sooner.
 *   A controller's first sync of 10,000 instances (a finalizer and a status write
 *   each, 20,000 watch events) had grown its heap to 318 MB committed for 81 MB
 *   live, and RSS stayed at 430 MB; with this flag it stayed near 180 MB
 *   (docs/benchmark.md).
 * Old space is left uncapped so a controller caching 10,000 instances never hits a limit.
 */
export const PRODUCTION_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--optimize-for-size'];
