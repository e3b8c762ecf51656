import { ApiException } from '@kubernetes/client-node';
import { conflict, CtfleetError, notFound, permanent, transient } from '../../domain/errors.ts';

/** Translates a client-node failure into a classified {@link CtfleetError}. */
export function translateKubeError(error: unknown, what: string): CtfleetError {
  if (error instanceof CtfleetError) return error;
  if (error instanceof ApiException) {
    const status = (error as ApiException<unknown>).code;
    const detail = messageOf((error as ApiException<unknown>).body) ?? error.message.split('\n')[0] ?? '';
    if (status === 404) return notFound('NotFound', `${what}: not found`, error);
    if (status === 409) return conflict('Conflict', `${what}: ${detail}`, error);
    if (status === 400 || status === 403 || status === 422) return permanent(status === 403 ? 'Forbidden' : 'Invalid', `${what}: ${detail}`, error);
    return transient('ApiUnavailable', `${what}: HTTP ${status} ${detail}`, error);
  }
  return transient('ApiUnreachable', `${what}: ${error instanceof Error ? error.message : String(error)}`, error);
}

function messageOf(body: unknown): string | undefined {
  if (typeof body === 'string') {
    try {
      return messageOf(JSON.parse(body));
    } catch {
      return body.slice(0, 300);
    }
  }
  if (typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string') return body.message;
  return undefined;
}
