import { pino, type Logger } from 'pino';
import { PinoPretty } from 'pino-pretty';

/** How log lines look: `json` (one object a line), `pretty` (readable lines), `auto` (pretty on a terminal, JSON otherwise). */
export type LogFormat = 'auto' | 'json' | 'pretty';

/** The roles that log: the API, the worker, `npm start`'s supervisor and `npm run cluster`'s. */
export type LogRole = 'api' | 'worker' | 'start' | 'cluster';

/** Structured logs on stdout, one logger per process role: JSON when piped, readable lines on a terminal. */
export function createLogger(role: LogRole, level: string, format: LogFormat = 'auto'): Logger {
  const options = { name: `hodei-${role}`, level };
  const tty = process.stdout.isTTY === true;
  if (format === 'json' || (format === 'auto' && !tty)) return pino(options);
  // In this thread and synchronous: a line is written before the process may exit.
  return pino(
    options,
    PinoPretty({
      sync: true,
      colorize: tty,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      singleLine: true,
    }),
  );
}
