import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ArtifactStore } from '../../artifact-store/artifact-store.js';
import type { ArtifactManifest } from '../../domain/artifacts.js';
import { LogRetention } from '../../log-store/retention.js';

/** Fresh, empty storage for one test; `open` opens a store on it. */
export interface ArtifactStorage {
  open(): Promise<ArtifactStore>;
  destroy(): Promise<void>;
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

function manifest(jobId: string, artifacts: ArtifactManifest['artifacts'] = []): ArtifactManifest {
  return { jobId, attempt: 1, artifacts, truncated: false, collectedAt: new Date().toISOString() };
}

/** The same behaviour from every artifact store backend. */
export function describeArtifactStoreContract(name: string, makeStorage: () => Promise<ArtifactStorage>) {
  describe(`${name} (artifact store contract)`, () => {
    let storage: ArtifactStorage;
    let store: ArtifactStore;
    const job = () => `job-${randomUUID()}`;

    beforeEach(async () => {
      storage = await makeStorage();
      store = await storage.open();
    });
    afterEach(async () => {
      await store.close();
      await storage.destroy();
    });

    it('stores a blob under its sha256 and serves it whole and by range', async () => {
      const id = job();
      const data = randomBytes(100_000);
      const stored = await store.putBlob(id, Readable.from([data.subarray(0, 10), data.subarray(10)]));
      expect(stored).toEqual({ sha256: sha(data), size: data.length });
      expect(sha(await buffer((await store.openBlob(id, stored.sha256))!))).toBe(sha(data));
      const part = await buffer((await store.openBlob(id, stored.sha256, { start: 10, end: 19 }))!);
      expect(part.equals(data.subarray(10, 20))).toBe(true);
      // The same content again: the same address, still whole.
      expect(await store.putBlob(id, Readable.from([data]))).toEqual(stored);
      expect((await buffer((await store.openBlob(id, stored.sha256))!)).length).toBe(data.length);
    });

    it('stores a small blob from its bytes under the same address as streamed', async () => {
      const id = job();
      const data = Buffer.from('small and known');
      const small = await store.putSmallBlob(id, data);
      expect(small).toEqual({ sha256: sha(data), size: data.length });
      expect(await store.putBlob(id, Readable.from([data]))).toEqual(small);
      expect(await store.putSmallBlob(id, data)).toEqual(small);
      expect((await buffer((await store.openBlob(id, small.sha256))!)).equals(data)).toBe(true);
    });

    it('streams a large blob in (multipart where the backend has it) and back, byte for byte', async () => {
      const id = job();
      const hash = createHash('sha256');
      const chunks = Array.from({ length: 24 }, () => randomBytes(1024 * 1024));
      for (const c of chunks) hash.update(c);
      const stored = await store.putBlob(id, Readable.from(chunks));
      expect(stored).toEqual({ sha256: hash.digest('hex'), size: 24 * 1024 * 1024 });
      const back = createHash('sha256');
      for await (const c of (await store.openBlob(id, stored.sha256))!) back.update(c as Buffer);
      expect(back.digest('hex')).toBe(stored.sha256);
    });

    it('keeps each job to its own blobs, and knows no blob it was not given', async () => {
      const a = job();
      const stored = await store.putBlob(a, Readable.from([Buffer.from('only a')]));
      expect(await store.openBlob(job(), stored.sha256)).toBeUndefined();
      expect(await store.openBlob(a, '0'.repeat(64))).toBeUndefined();
      expect(await store.openBlob(a, '../../etc/passwd')).toBeUndefined();
    });

    it('has no manifest until one is written, then the latest one', async () => {
      const id = job();
      expect(await store.readManifest(id)).toBeUndefined();
      const stored = await store.putBlob(id, Readable.from([Buffer.from('x')]));
      await store.writeManifest(manifest(id, [{ path: 'a.txt', size: 1, sha256: stored.sha256, mode: 0o644 }]));
      expect((await store.readManifest(id))?.artifacts.map((a) => a.path)).toEqual(['a.txt']);
      await store.writeManifest(manifest(id, []));
      expect((await store.readManifest(id))?.artifacts).toEqual([]);
      // Opened again, as another process would.
      const again = await storage.open();
      expect((await again.readManifest(id))?.jobId).toBe(id);
      await again.close();
    });

    it('finds jobs by when their manifest was written, and deletes a job whole', async () => {
      const id = job();
      const stored = await store.putBlob(id, Readable.from([Buffer.from('gone soon')]));
      await store.writeManifest(manifest(id, [{ path: 'g', size: 9, sha256: stored.sha256, mode: 0o600 }]));
      expect(await store.jobsWrittenBefore(Date.now() + 60_000, 100)).toContain(id);
      expect(await store.jobsWrittenBefore(Date.now() - 60_000, 100)).not.toContain(id);
      await store.deleteJob(id);
      expect(await store.readManifest(id)).toBeUndefined();
      expect(await store.openBlob(id, stored.sha256)).toBeUndefined();
      expect(await store.jobsWrittenBefore(Date.now() + 60_000, 100)).not.toContain(id);
    });

    it("retention's sweep deletes finished jobs' artifacts and keeps running ones'", async () => {
      const [done, running] = [job(), job()];
      for (const id of [done, running]) {
        const stored = await store.putBlob(id, Readable.from([Buffer.from(id)]));
        await store.writeManifest(manifest(id, [{ path: 'f', size: id.length, sha256: stored.sha256, mode: 0o644 }]));
      }
      const retention = new LogRetention(store, {
        retentionMs: 1000,
        intervalMs: 60_000,
        isFinished: async (id) => id !== running,
      });
      const deleted = await retention.sweep(Date.now() + 10_000);
      expect(deleted).toBeGreaterThanOrEqual(1);
      expect(await store.readManifest(done)).toBeUndefined();
      expect((await store.readManifest(running))?.jobId).toBe(running);
    });
  });
}
