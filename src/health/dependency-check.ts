/** The outcome of checking one system ctfleet depends on. */
export interface DependencyStatus {
  name: string;
  healthy: boolean;
  /** What was found (version, endpoint) or, when unhealthy, what went wrong. */
  detail: string;
}

/** A check of one dependency. Never throws: failures become an unhealthy status. */
export type DependencyCheck = () => Promise<DependencyStatus>;

/** Runs the checks side by side, each bounded by `timeoutMs`; each result is named by its key. */
export async function checkDependencies(
  checks: Record<string, DependencyCheck>,
  timeoutMs: number,
): Promise<DependencyStatus[]> {
  return Promise.all(
    Object.entries(checks).map(async ([name, check]): Promise<DependencyStatus> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<DependencyStatus>((resolve) => {
        timer = setTimeout(() => { resolve({ name, healthy: false, detail: `no answer within ${timeoutMs} ms` }); }, timeoutMs);
      });
      try {
        return await Promise.race([
          check().then(
            (status) => ({ ...status, name }),
            (error: unknown) => ({ name, healthy: false, detail: describeError(error) }),
          ),
          timeout,
        ]);
      } finally {
        clearTimeout(timer);
      }
    }),
  );
}

/** One line for a person: the error's message, and its code when it has one. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const message = error.message.split('\n')[0] ?? error.name;
    return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
  }
  return String(error);
}
