import type { ErrorCode } from './reasons.ts';

/**
 * Errors that carry their retry class. Adapters translate library errors into
 * these at the boundary; the core never sees an HTTP status or a socket error.
 * Across processes (job failures), classify by `code`, never by `instanceof`.
 */
export type RetryClass = 'transient' | 'conflict' | 'permanent' | 'not-found';

export class CtfleetError extends Error {
  /** Stable, CamelCase: doubles as a condition reason and a metric label. */
  readonly code: ErrorCode;
  readonly retry: RetryClass;

  constructor(code: ErrorCode, retry: RetryClass, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CtfleetError';
    this.code = code;
    this.retry = retry;
  }
}

export const transient = (code: ErrorCode, message: string, cause?: unknown): CtfleetError => new CtfleetError(code, 'transient', message, { cause });
export const permanent = (code: ErrorCode, message: string, cause?: unknown): CtfleetError => new CtfleetError(code, 'permanent', message, { cause });
export const conflict = (code: ErrorCode, message: string, cause?: unknown): CtfleetError => new CtfleetError(code, 'conflict', message, { cause });
export const notFound = (code: ErrorCode, message: string, cause?: unknown): CtfleetError => new CtfleetError(code, 'not-found', message, { cause });

/** The retry class of any error: unknown errors are transient. */
export function retryClassOf(error: unknown): RetryClass {
  return error instanceof CtfleetError ? error.retry : 'transient';
}

export function isNotFound(error: unknown): boolean {
  return retryClassOf(error) === 'not-found';
}
