import { pino, type Logger as PinoLogger } from 'pino';

/** Structured JSON logger; child loggers carry instance and job ids. */
export type Logger = PinoLogger;

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Creates the process's root logger, tagged with the component name. */
export function createLogger(component: string, level: LogLevel): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}
