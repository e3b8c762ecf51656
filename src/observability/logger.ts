import { pino, type Logger as PinoLogger } from 'pino';

/** Structured JSON logger; child loggers carry instance and job ids. */
export type Logger = PinoLogger;

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/**
 * Creates the process's root logger, tagged with the process's role; child
 * loggers add `component` (supervisor, api, …), so no line carries a key twice.
 */
export function createLogger(role: string, level: LogLevel): Logger {
  return pino({ level, base: { role }, timestamp: pino.stdTimeFunctions.isoTime });
}
