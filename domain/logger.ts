import { pino, type Logger } from 'pino';

/** Structured JSON logs on stdout, one logger per process role. */
export function createLogger(role: 'api' | 'worker', level: string): Logger {
  return pino({ name: `hodei-${role}`, level });
}
