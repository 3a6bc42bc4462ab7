import { ApplicationFailure } from '@temporalio/activity';
import { FAILURE_LOG_STORE_FAILED } from '../domain/job-failures.js';
import type { LogStore } from '../log-store/log-store.js';

/** What a store's write error says about its disk, if it says the store cannot take writes. */
function storeDiskProblem(err: unknown): 'full' | 'unwritable' | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  // SQLite (better-sqlite3), then PostgreSQL's SQLSTATEs: disk_full, read_only_sql_transaction, io_error.
  if (code === 'SQLITE_FULL' || code === '53100') return 'full';
  if (/^SQLITE_(READONLY|IOERR|CANTOPEN)/.test(code) || code === '25006' || code === '58030') return 'unwritable';
  return undefined;
}

/**
 * The log store with writes that fail for good when its disk is full or cannot be written: a
 * non-retryable `LogStoreFailed` ("log store full: …", "log store unwritable: …"), so the job
 * ends FAILED saying so at once (and the workflow removes its container) rather than its run
 * being retried against the same disk until its attempts run out. Other errors (a connection
 * lost, a busy database) are thrown as they are, and retried.
 */
export function failingClearly(store: LogStore): LogStore {
  const write =
    <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
    async (...args: A): Promise<void> => {
      try {
        await fn.apply(store, args);
      } catch (err) {
        const problem = storeDiskProblem(err);
        if (!problem) throw err;
        throw ApplicationFailure.create({
          type: FAILURE_LOG_STORE_FAILED,
          message: `log store ${problem}: ${(err as Error).message}`,
          nonRetryable: true,
          cause: err as Error,
        });
      }
    };
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'append') return write(target.append);
      if (prop === 'recordExit') return write(target.recordExit);
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
