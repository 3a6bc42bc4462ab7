import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ArtifactManifest } from '../domain/artifacts.js';
import { isSha256, STREAM_CHUNK_BYTES, type ArtifactStore, type ByteRange, type StoredBlob } from './artifact-store.js';

const MANIFEST = 'manifest.json';

/** A Transform that hashes and counts what goes through it. */
export class Hashing extends Transform {
  private readonly hash = createHash('sha256');
  size = 0;
  constructor() {
    super({ highWaterMark: STREAM_CHUNK_BYTES });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    done(null, chunk);
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}

/**
 * Artifacts as files under `<data dir>/artifacts/<job>/`: `blobs/<sha256>` and `manifest.json`.
 * Every file is written to a temporary name, flushed, and renamed into place: a crash leaves a
 * complete file or none (and temporaries, removed with the job).
 */
export class DataDirArtifactStore implements ArtifactStore {
  constructor(private readonly root: string) {}

  static inDataDir(dataDir: string): DataDirArtifactStore {
    return new DataDirArtifactStore(path.join(dataDir, 'artifacts'));
  }

  /** The job's directory: its id encoded to one safe path segment. */
  private jobDir(jobId: string): string {
    return path.join(this.root, Buffer.from(jobId, 'utf8').toString('base64url'));
  }

  private async temp(jobId: string): Promise<string> {
    return path.join(await this.dir(path.join(this.jobDir(jobId), 'tmp')), randomUUID());
  }

  /** Directories known to exist: a collection of many small files makes each once. */
  private readonly made = new Set<string>();

  private async dir(dir: string): Promise<string> {
    if (!this.made.has(dir)) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      this.made.add(dir);
    }
    return dir;
  }

  async putBlob(jobId: string, body: Readable): Promise<StoredBlob> {
    const temp = path.join(await this.dir(path.join(this.jobDir(jobId), 'tmp')), randomUUID());
    const blobs = await this.dir(path.join(this.jobDir(jobId), 'blobs'));
    const hashing = new Hashing();
    try {
      // Not flushed one by one (a collection of 100,000 small files would wait on as many disk
      // syncs): the rename makes each blob whole or absent to any reader, and the manifest,
      // written last, is flushed.
      await pipeline(body, hashing, createWriteStream(temp, { mode: 0o600, highWaterMark: STREAM_CHUNK_BYTES }));
      const sha256 = hashing.digest();
      await rename(temp, path.join(blobs, sha256));
      return { sha256, size: hashing.size };
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  async putSmallBlob(jobId: string, data: Buffer): Promise<StoredBlob> {
    const sha256 = createHash('sha256').update(data).digest('hex');
    const blobs = await this.dir(path.join(this.jobDir(jobId), 'blobs'));
    const target = path.join(blobs, sha256);
    // Content-addressed: one already there (a retried collection, a duplicate file) is this one.
    const present = await stat(target).then(
      () => true,
      () => false,
    );
    if (!present) {
      const temp = await this.temp(jobId);
      try {
        await writeFile(temp, data, { mode: 0o600 });
        await rename(temp, target);
      } catch (err) {
        await rm(temp, { force: true });
        throw err;
      }
    }
    return { sha256, size: data.length };
  }

  async writeManifest(manifest: ArtifactManifest): Promise<void> {
    const temp = await this.temp(manifest.jobId);
    const file = await open(temp, 'w', 0o600);
    try {
      await file.writeFile(JSON.stringify(manifest));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path.join(this.jobDir(manifest.jobId), MANIFEST));
  }

  async readManifest(jobId: string): Promise<ArtifactManifest | undefined> {
    try {
      return JSON.parse(await readFile(path.join(this.jobDir(jobId), MANIFEST), 'utf8')) as ArtifactManifest;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async openBlob(jobId: string, sha256: string, range?: ByteRange): Promise<Readable | undefined> {
    if (!isSha256(sha256)) return undefined;
    const file = path.join(this.jobDir(jobId), 'blobs', sha256);
    try {
      await stat(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return createReadStream(file, range ? { start: range.start, end: range.end } : {});
  }

  async jobsWrittenBefore(ts: number, limit: number): Promise<string[]> {
    let dirs: string[];
    try {
      dirs = await readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const found: string[] = [];
    for (const dir of dirs) {
      if (found.length >= limit) break;
      const written = await stat(path.join(this.root, dir, MANIFEST)).then(
        (s) => s.mtimeMs,
        // A job without a manifest (a collection that never completed): its directory's age.
        () => stat(path.join(this.root, dir)).then((s) => s.mtimeMs),
      );
      if (written < ts) found.push(Buffer.from(dir, 'base64url').toString('utf8'));
    }
    return found;
  }

  async deleteJob(jobId: string): Promise<void> {
    for (const dir of this.made) if (dir.startsWith(this.jobDir(jobId) + path.sep)) this.made.delete(dir);
    await rm(this.jobDir(jobId), { recursive: true, force: true });
  }

  async close(): Promise<void> {}
}
