/**
 * V8 flags ctfleet's processes run with in production (the image's entrypoint and
 * the benchmark use these). A 1 MB young generation makes V8 collect short-lived
 * garbage (API responses, job payloads) early instead of growing the heap: it
 * cost no measurable throughput and keeps each process's RSS down. Old space is
 * left uncapped so a controller caching 10,000 instances never hits a limit.
 */
export const PRODUCTION_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
