import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { extract } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataDirArtifactStore } from '../../artifact-store/data-dir-artifact-store.js';
import type { ArtifactEntry } from '../../domain/artifacts.js';
import { inputMode, readStepInputs, stepInputsArchive, type StepInput } from '../../activities/step-inputs.js';

interface Read {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  data: Buffer;
}

/** Every entry of a tar stream, with its bytes. */
async function readTar(archive: Readable): Promise<Read[]> {
  const entries: Read[] = [];
  const tar = extract();
  const done = new Promise<void>((resolve, reject) => {
    tar.on('entry', (header, body, next) => {
      const chunks: Buffer[] = [];
      body.on('data', (c) => chunks.push(c as Buffer));
      body.on('end', () => {
        entries.push({
          name: header.name,
          type: header.type ?? 'file',
          mode: header.mode ?? 0,
          uid: header.uid ?? -1,
          gid: header.gid ?? -1,
          data: Buffer.concat(chunks),
        });
        next();
      });
    });
    tar.on('finish', resolve);
    tar.on('error', reject);
  });
  const pump = (async () => {
    try {
      for await (const chunk of archive) tar.write(chunk as Buffer);
      tar.end(undefined);
    } catch (err) {
      tar.destroy(err as Error);
    }
  })();
  await Promise.all([done, pump]);
  return entries;
}

describe('step inputs: the tar of the needed steps’ artifacts, streamed from the store', () => {
  let dir: string;
  let store: DataDirArtifactStore;
  const big = randomBytes(600 * 1024);
  let build: ArtifactEntry[];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'hodei-step-inputs-'));
    store = await DataDirArtifactStore.inDataDir(dir);
    const app = await store.putBlob('p-build', Readable.from([big]));
    const version = await store.putSmallBlob('p-build', Buffer.from('1.2.3\n'));
    const run = await store.putSmallBlob('p-build', Buffer.from('#!/bin/sh\n'));
    build = [
      { path: 'out/app.bin', size: app.size, sha256: app.sha256, mode: 0o644 },
      { path: 'out/bin/run.sh', size: run.size, sha256: run.sha256, mode: 0o700 },
      { path: 'version.txt', size: version.size, sha256: version.sha256, mode: 0o600 },
    ];
    await store.writeManifest({
      jobId: 'p-build',
      attempt: 1,
      artifacts: build,
      truncated: false,
      collectedAt: new Date().toISOString(),
    });
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const open = (jobId: string, sha256: string) => store.openBlob(jobId, sha256);

  it('puts each need under <step>/ with its paths, its bytes, root as owner and modes made readable', async () => {
    const inputs = await readStepInputs(store, [
      { step: 'build', jobId: 'p-build', artifacts: true },
      { step: 'lint', jobId: 'p-lint' },
    ]);
    expect(inputs).toEqual([
      { step: 'build', jobId: 'p-build', artifacts: build },
      { step: 'lint', jobId: 'p-lint', artifacts: [] },
    ]);
    const entries = await readTar(stepInputsArchive(inputs, open));
    expect(entries.map((e) => [e.name, e.type, e.mode.toString(8)])).toEqual([
      ['build/', 'directory', '755'],
      ['build/out/', 'directory', '755'],
      ['build/out/app.bin', 'file', '644'],
      ['build/out/bin/', 'directory', '755'],
      ['build/out/bin/run.sh', 'file', '755'],
      ['build/version.txt', 'file', '644'],
      ['lint/', 'directory', '755'],
    ]);
    for (const e of entries) expect([e.uid, e.gid]).toEqual([0, 0]);
    expect(entries.find((e) => e.name === 'build/out/app.bin')!.data.equals(big)).toBe(true);
    expect(entries.find((e) => e.name === 'build/version.txt')!.data.toString()).toBe('1.2.3\n');
  });

  it('keeps permission bits but set-id and sticky ones, readable by all, executable by all when by its owner', () => {
    expect(inputMode(0o600)).toBe(0o644);
    expect(inputMode(0o700)).toBe(0o755);
    expect(inputMode(0o4755)).toBe(0o755);
    expect(inputMode(0o640)).toBe(0o644);
    expect(inputMode(0o664)).toBe(0o664);
  });

  it('fails the step when a need that declares artifacts has none in the store', async () => {
    const err = await readStepInputs(store, [{ step: 'gone', jobId: 'p-gone', artifacts: true }]).catch((e) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ nonRetryable: true });
    expect((err as Error).message).toMatch(/^in\/gone\/: the artifact store holds no artifacts of job p-gone/);
  });

  it.each([
    ['../escape', 'an unsafe artifact path'],
    ['/etc/passwd', 'an unsafe artifact path'],
    ['out/../../x', 'an unsafe artifact path'],
    ['out//x', 'an unsafe artifact path'],
    ['line\nbreak', 'an unsafe artifact path'],
  ])('rejects the hostile stored path %j instead of writing it anywhere', async (hostile, message) => {
    const inputs: StepInput[] = [{ step: 'build', jobId: 'p-build', artifacts: [{ ...build[1]!, path: hostile }] }];
    await expect(readTar(stepInputsArchive(inputs, open))).rejects.toThrow(message);
  });

  it.each(['..', 'a/b', ''])('rejects the step name %j', async (step) => {
    await expect(readTar(stepInputsArchive([{ step, jobId: 'p-build', artifacts: [] }], open))).rejects.toThrow(
      'is not a step name',
    );
  });

  it('fails when the store no longer holds a listed blob', async () => {
    const missing = { ...build[1]!, sha256: 'f'.repeat(64) };
    await expect(
      readTar(stepInputsArchive([{ step: 'build', jobId: 'p-build', artifacts: [missing] }], open)),
    ).rejects.toThrow('in/build/out/bin/run.sh: the artifact store no longer holds this artifact of job p-build');
  });
});
