import type { Readable } from 'node:stream';
import type { ArtifactManifest } from '../domain/artifacts.js';

/** A blob the store holds: its digest and size. */
export interface StoredBlob {
  sha256: string;
  size: number;
}

/** Bytes `start` to `end` (both inclusive) of a blob. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Where job artifacts live: the data dir (one machine) or S3-compatible object storage (several).
 * Blobs are content-addressed per job, so a collection that is redone writes the same names again;
 * a job's manifest is written last, so a job has artifacts only once a collection is complete.
 * Both backends pass the same contract suite (test/support/artifact-store-contract.ts).
 */
export interface ArtifactStore {
  /**
   * Stores a blob of the job from a stream (never held whole in memory), hashing it on the way;
   * resolves once it is durable under its sha256. Storing the same content again is harmless.
   */
  putBlob(jobId: string, body: Readable): Promise<StoredBlob>;
  /** Stores a small blob whose bytes are at hand (and so its sha256 before it is written). */
  putSmallBlob(jobId: string, data: Buffer): Promise<StoredBlob>;
  /** Writes (or replaces) the job's manifest, atomically. */
  writeManifest(manifest: ArtifactManifest): Promise<void>;
  /** The job's manifest; undefined when it has none (no collection complete). */
  readManifest(jobId: string): Promise<ArtifactManifest | undefined>;
  /** A blob's bytes (or a range of them); undefined when the job holds no such blob. */
  openBlob(jobId: string, sha256: string, range?: ByteRange): Promise<Readable | undefined>;
  /** Jobs whose manifest was last written before `ts` (ms since the epoch), at most `limit`: retention candidates. */
  jobsWrittenBefore(ts: number, limit: number): Promise<string[]>;
  /** Deletes everything of the job: its blobs and its manifest. */
  deleteJob(jobId: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Buffer size of each stage a large blob streams through (demux, tar parse, hash, file or upload):
 * big enough that the stages hand over few large chunks and the file's writes batch (Node's
 * defaults of 16 KiB made a 500 MB collection many small steps), small enough to stay bounded.
 */
export const STREAM_CHUNK_BYTES = 1024 * 1024;

/** Largest blob the collector reads into memory for `putSmallBlob`. */
export const SMALL_BLOB_BYTES = 256 * 1024;

export const isSha256 = (value: string) => /^[0-9a-f]{64}$/.test(value);
