/** How dockerode reports an engine's HTTP errors. */
interface DockerHttpError {
  statusCode?: number;
  json?: { message?: string };
  message?: string;
}

/** The engine's own message, without dockerode's "(HTTP code 404) no such container -" prefix. */
export function dockerMessage(error: unknown): string {
  const e = error as DockerHttpError;
  return (e.json?.message ?? e.message ?? String(error)).replace(/^\(HTTP code \d+\) [a-z ]+ - /, '').trim();
}

export function statusOf(error: unknown): number | undefined {
  return (error as DockerHttpError).statusCode;
}
