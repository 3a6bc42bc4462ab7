import { ApplicationFailure } from '@temporalio/common';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { failingClearly } from '../../activities/log-store-failure.js';
import { FAILURE_LOG_STORE_FAILED } from '../../domain/job-failures.js';
import type { LogStore } from '../../log-store/log-store.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';

const dirs: string[] = [];
const stores: SqliteLogStore[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A real store whose writes fail with `code`, as a driver reports a disk problem. */
function storeFailingWith(code: string): LogStore {
  const dir = mkdtempSync(path.join(tmpdir(), 'hodei-unit-'));
  dirs.push(dir);
  const store = SqliteLogStore.inDataDir(dir);
  stores.push(store);
  const fail = async () => {
    throw Object.assign(new Error(`driver says ${code}`), { code });
  };
  return Object.assign(store, { append: fail, recordExit: fail });
}

const line = { seq: 1, stream: 'stdout' as const, ts: 1, line: 'x', attempt: 1 };
const exit = { exitCode: 0, oomKilled: false, startedAt: '', finishedAt: '', lastSeq: 1 };

describe('log store writes the disk refuses', () => {
  it.each([
    ['SQLITE_FULL', 'full'],
    ['53100', 'full'],
    ['SQLITE_IOERR_WRITE', 'unwritable'],
    ['SQLITE_READONLY', 'unwritable'],
    ['25006', 'unwritable'],
  ])('%s: a non-retryable LogStoreFailed, "log store %s: …"', async (code, problem) => {
    const store = failingClearly(storeFailingWith(code));
    for (const write of [() => store.append('job', [line]), () => store.recordExit('job', 1, exit)]) {
      const err = await write().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect(err).toMatchObject({
        type: FAILURE_LOG_STORE_FAILED,
        nonRetryable: true,
        message: `log store ${problem}: driver says ${code}`,
      });
    }
  });

  it('other errors (a busy database, a lost connection) are thrown as they are, to be retried', async () => {
    for (const code of ['SQLITE_BUSY', 'ECONNREFUSED']) {
      const err = await failingClearly(storeFailingWith(code))
        .append('job', [line])
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).not.toBeInstanceOf(ApplicationFailure);
      expect(err).toMatchObject({ code });
    }
  });

  it('reads and writes that work go to the store', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hodei-unit-'));
    dirs.push(dir);
    const sqlite = SqliteLogStore.inDataDir(dir);
    stores.push(sqlite);
    const store = failingClearly(sqlite);
    await store.append('job', [line]);
    expect(await store.read('job')).toEqual([line]);
    expect(await store.lastSeq('job')).toBe(1);
  });
});
