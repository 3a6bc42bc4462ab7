import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';
import { describeLogStoreContract } from '../support/log-store-contract.js';

// The embedded default: one SQLite file in a fresh data dir per test.
describeLogStoreContract('SqliteLogStore', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hodei-logs-'));
  return {
    open: async () => SqliteLogStore.inDataDir(dir),
    destroy: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
