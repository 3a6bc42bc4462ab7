import { createHash, randomUUID } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { ArtifactManifest } from '../domain/artifacts.js';
import { isSha256, type ArtifactStore, type ByteRange, type StoredBlob } from './artifact-store.js';
import { Hashing } from './data-dir-artifact-store.js';

/** Bytes per part of a multipart upload, and parts in flight: at most 16 MiB buffered per upload. */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 2;

export interface S3ArtifactStoreOptions {
  bucket: string;
  /** Key prefix (no leading or trailing slash), '' for none. */
  prefix: string;
  client: S3ClientConfig;
}

const encodeJob = (jobId: string) => Buffer.from(jobId, 'utf8').toString('base64url');

/**
 * Artifacts in an S3 bucket: `<prefix>/jobs/<job>/blobs/<sha256>` and one manifest per job under
 * `<prefix>/manifests/<job>.json` (a prefix of its own, so retention lists manifests only).
 * A blob is uploaded (multipart past 8 MiB, streamed) to a temporary key while it is hashed,
 * then copied to its address on the server and the temporary deleted; S3 writes are atomic, so a
 * reader sees a whole object or none. Incomplete multipart uploads of a worker that died are
 * left to the bucket's lifecycle rule (docs/artifacts.md).
 */
export class S3ArtifactStore implements ArtifactStore {
  private readonly s3: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(options: S3ArtifactStoreOptions) {
    this.s3 = new S3Client(options.client);
    this.bucket = options.bucket;
    this.prefix = options.prefix ? `${options.prefix.replace(/^\/+|\/+$/g, '')}/` : '';
  }

  private jobKey(jobId: string, rest: string): string {
    return `${this.prefix}jobs/${encodeJob(jobId)}/${rest}`;
  }

  private manifestKey(jobId: string): string {
    return `${this.prefix}manifests/${encodeJob(jobId)}.json`;
  }

  async putBlob(jobId: string, body: Readable): Promise<StoredBlob> {
    const temp = this.jobKey(jobId, `tmp/${randomUUID()}`);
    const hashing = new Hashing();
    const through = new PassThrough();
    const upload = new Upload({
      client: this.s3,
      params: { Bucket: this.bucket, Key: temp, Body: through },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      leavePartsOnError: false,
    });
    try {
      await Promise.all([pipeline(body, hashing, through), upload.done()]);
      const sha256 = hashing.digest();
      await this.s3.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: this.jobKey(jobId, `blobs/${sha256}`),
          CopySource: `${this.bucket}/${temp.split('/').map(encodeURIComponent).join('/')}`,
        }),
      );
      return { sha256, size: hashing.size };
    } finally {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: temp })).catch(() => undefined);
    }
  }

  async putSmallBlob(jobId: string, data: Buffer): Promise<StoredBlob> {
    const sha256 = createHash('sha256').update(data).digest('hex');
    // Its address is known before the write: straight there, one request.
    await this.s3.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: this.jobKey(jobId, `blobs/${sha256}`), Body: data }),
    );
    return { sha256, size: data.length };
  }

  async writeManifest(manifest: ArtifactManifest): Promise<void> {
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.manifestKey(manifest.jobId),
        Body: JSON.stringify(manifest),
        ContentType: 'application/json',
      }),
    );
  }

  async readManifest(jobId: string): Promise<ArtifactManifest | undefined> {
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.manifestKey(jobId) }));
      return JSON.parse(await object.Body!.transformToString('utf8')) as ArtifactManifest;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async openBlob(jobId: string, sha256: string, range?: ByteRange): Promise<Readable | undefined> {
    if (!isSha256(sha256)) return undefined;
    try {
      const object = await this.s3.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.jobKey(jobId, `blobs/${sha256}`),
          ...(range && { Range: `bytes=${range.start}-${range.end}` }),
        }),
      );
      return object.Body as Readable;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async jobsWrittenBefore(ts: number, limit: number): Promise<string[]> {
    const found: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.prefix}manifests/`, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) {
        if (found.length >= limit) return found;
        if (!object.Key?.endsWith('.json') || !object.LastModified || object.LastModified.getTime() >= ts) continue;
        const name = object.Key.slice(`${this.prefix}manifests/`.length, -'.json'.length);
        found.push(Buffer.from(name, 'base64url').toString('utf8'));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return found;
  }

  async deleteJob(jobId: string): Promise<void> {
    const prefix = this.jobKey(jobId, '');
    let token: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length > 0)
        await this.s3.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys, Quiet: true } }));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    // Last: until it goes, retention finds the job again and finishes the deletion.
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.manifestKey(jobId) }));
  }

  async close(): Promise<void> {
    this.s3.destroy();
  }
}

function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}
