/**
 * A real S3 server for the S3 artifact store's tests: versitygw over a fresh directory, on
 * 127.0.0.1, built by scripts/versitygw.sh. It cannot be asked for port 0, so it gets a candidate
 * port and is started again on another when that one turns out taken.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { candidatePorts } from './stack.js';
import { waitFor } from './wait.js';

export const VERSITYGW = path.resolve(import.meta.dirname, '../../.tools/versitygw-1.8.0/versitygw');

export interface S3Server {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  pid: number;
  /** Makes a bucket of that name. */
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startVersitygw(): Promise<S3Server> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hodei-s3-'));
  const root = path.join(dir, 'root');
  await mkdir(root);
  const accessKeyId = `hodei${randomBytes(6).toString('hex')}`;
  const secretAccessKey = randomBytes(24).toString('hex');
  const region = 'us-east-1';
  for (let attempt = 1; ; attempt += 1) {
    const [port] = await candidatePorts(1);
    let output = '';
    const child: ChildProcess = spawn(VERSITYGW, ['--port', `127.0.0.1:${port}`, 'posix', root], {
      env: { ...process.env, ROOT_ACCESS_KEY: accessKeyId, ROOT_SECRET_KEY: secretAccessKey },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    child.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    let gone = false;
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => ((gone = true), resolve()));
      child.once('error', () => ((gone = true), resolve()));
    });
    const endpoint = `http://127.0.0.1:${port}`;
    const client = new S3Client({
      endpoint,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
    });
    const up = await waitFor(
      'versitygw to answer',
      async () => {
        if (gone) return true;
        await client.send(new CreateBucketCommand({ Bucket: 'hodei-probe' }));
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    ).catch(() => false);
    if (up && !gone) {
      const stop = async () => {
        client.destroy();
        if (!gone) {
          child.kill('SIGTERM');
          await exited;
        }
        await rm(dir, { recursive: true, force: true });
      };
      return {
        endpoint,
        accessKeyId,
        secretAccessKey,
        region,
        pid: child.pid!,
        createBucket: async (name) => {
          await client.send(new CreateBucketCommand({ Bucket: name }));
        },
        stop,
      };
    }
    client.destroy();
    if (!gone) {
      child.kill('SIGKILL');
      await exited;
    }
    if (!/address already in use|bind/i.test(output) || attempt >= 5) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`versitygw did not start:\n${output}`);
    }
  }
}
