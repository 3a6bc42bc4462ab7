import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DataDirArtifactStore } from '../../artifact-store/data-dir-artifact-store.js';
import { describeArtifactStoreContract } from '../support/artifact-store-contract.js';

// The embedded default: files in a fresh data dir per test.
describeArtifactStoreContract('DataDirArtifactStore', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hodei-artifacts-'));
  return {
    open: async () => DataDirArtifactStore.inDataDir(dir),
    destroy: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
