/**
 * A pipeline step's inputs: the artifacts of the steps it needs (directly), placed in its
 * container under `/work/in/<step>/` (paths kept) before its script starts. The working
 * directory is a tmpfs, which Docker's archive endpoint cannot write into, so `/work/in` is an
 * anonymous volume of the container (see `jobContainerSpec`), filled by a putArchive of a tar
 * streamed from the artifact store: one blob at a time, never a whole file or archive in memory.
 * The files are root's and read-only to the job's user (their permission bits kept, made
 * readable): the volume is on the engine's disk, outside the job's scratch limit, so the job
 * must not grow it.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type Docker from 'dockerode';
import { Readable } from 'node:stream';
import { pack, type Pack } from 'tar-stream';
import { safeArtifactPath, type ArtifactEntry } from '../domain/artifacts.js';
import type { JobInputRef } from '../domain/job-spec.js';
import type { ArtifactStore } from '../artifact-store/artifact-store.js';
import { FAILURE_PROVISIONING_REJECTED } from '../domain/job-failures.js';
import { INPUTS_DIR } from './container-spec.js';

/** A tar entry's header, as tar-stream's pack takes it. */
type EntryHeader = Parameters<Pack['entry']>[0];

/** One needed step and the artifacts it hands on (none when its job kept none). */
export interface StepInput {
  step: string;
  jobId: string;
  artifacts: ArtifactEntry[];
}

/** Opens a blob of a job; undefined when the store no longer holds it. */
export type OpenBlob = (jobId: string, sha256: string) => Promise<Readable | undefined>;

/** The step inputs' hand-off cannot be done: the step fails, saying why (never retried). */
export function inputsUnavailable(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FAILURE_PROVISIONING_REJECTED, message, nonRetryable: true });
}

/**
 * Reads the needed jobs' manifests. A need whose job declared no artifacts hands on nothing (an
 * empty `in/<step>/`); one that declared artifacts but whose manifest the store does not hold
 * (none were collected, or retention removed them) fails the step: never a silent empty dir.
 */
export async function readStepInputs(store: ArtifactStore, refs: readonly JobInputRef[]): Promise<StepInput[]> {
  const inputs: StepInput[] = [];
  for (const ref of refs) {
    if (!ref.artifacts) {
      inputs.push({ step: ref.step, jobId: ref.jobId, artifacts: [] });
      continue;
    }
    const manifest = await store.readManifest(ref.jobId);
    if (!manifest) {
      throw inputsUnavailable(
        `in/${ref.step}/: the artifact store holds no artifacts of job ${ref.jobId} (step ${ref.step} declares ` +
          'artifacts, but none were collected, or retention removed them)',
      );
    }
    inputs.push({ step: ref.step, jobId: ref.jobId, artifacts: manifest.artifacts });
  }
  return inputs;
}

/** The mode an input lands with: its own bits, readable by all (the job's user is "other"), no set-id bits. */
export const inputMode = (mode: number) => (mode & 0o777) | 0o444 | (mode & 0o100 ? 0o111 : 0);

/** The entries' owner: root, so the job's user can read but never write (nor grow) them. */
const ROOT = { uid: 0, gid: 0 } as const;

/**
 * A tar of the inputs, relative to INPUTS_DIR: a directory per step, then each artifact under
 * `<step>/<path>` with its parent directories, each blob streamed from the store as the archive
 * is read. A stored path that is not a safe relative name, or a step name that is not one
 * segment, fails the archive (and so the step) instead of being written anywhere. A blob the
 * store no longer holds fails it too (`inputsUnavailable`).
 */
export function stepInputsArchive(inputs: readonly StepInput[], openBlob: OpenBlob): Readable {
  const archive = pack();
  void (async () => {
    const mtime = new Date();
    const dirs = new Set<string>();
    const dir = async (name: string) => {
      if (dirs.has(name)) return;
      dirs.add(name);
      await addEntry(archive, { name: `${name}/`, type: 'directory', mode: 0o755, mtime, ...ROOT });
    };
    for (const input of inputs) {
      if (!safeArtifactPath(input.step) || input.step.includes('/')) {
        throw inputsUnavailable(`in/: ${JSON.stringify(input.step)} is not a step name`);
      }
      await dir(input.step);
      for (const artifact of input.artifacts) {
        if (!safeArtifactPath(artifact.path)) {
          throw inputsUnavailable(
            `in/${input.step}/: job ${input.jobId} lists an unsafe artifact path ${JSON.stringify(artifact.path)}`,
          );
        }
        const name = `${input.step}/${artifact.path}`;
        const parts = name.split('/');
        for (let i = 2; i < parts.length; i += 1) await dir(parts.slice(0, i).join('/'));
        const body = await openBlob(input.jobId, artifact.sha256);
        if (!body) {
          throw inputsUnavailable(
            `in/${name}: the artifact store no longer holds this artifact of job ${input.jobId} (retention removed it?)`,
          );
        }
        const header: EntryHeader = {
          name,
          type: 'file',
          size: artifact.size,
          mode: inputMode(artifact.mode),
          mtime,
          ...ROOT,
        };
        await writeEntry(archive, header, body);
      }
    }
    archive.finalize();
  })().catch((err: unknown) => archive.destroy(err as Error));
  // tar-stream's pack is a streamx stream: a Node stream over it, for dockerode.
  return Readable.from(archive);
}

/**
 * Writes one file entry from a stream, one blob at a time with back-pressure kept (the engine's
 * read paces the store's). By hand: Node's pipe into a streamx Writable does not end it.
 */
async function writeEntry(archive: Pack, header: EntryHeader, body: Readable): Promise<void> {
  let entry!: ReturnType<Pack['entry']>;
  const done = new Promise<void>((resolve, reject) => {
    entry = archive.entry(header, (err) => (err ? reject(err) : resolve()));
  });
  try {
    for await (const chunk of body) {
      if (!entry.write(chunk as Buffer)) await new Promise<void>((resolve) => entry.once('drain', () => resolve()));
    }
  } catch (err) {
    body.destroy();
    throw err;
  }
  entry.end(undefined);
  await done;
}

function addEntry(archive: Pack, header: EntryHeader): Promise<void> {
  return new Promise((resolve, reject) => archive.entry(header, (err) => (err ? reject(err) : resolve())));
}

/**
 * Places the needed steps' artifacts in the created (not started) container under INPUTS_DIR.
 * An error of the archive (a missing blob, an unsafe name) is the one thrown, not the engine's
 * complaint about a broken upload.
 */
export async function placeStepInputs(
  container: Docker.Container,
  store: ArtifactStore,
  refs: readonly JobInputRef[],
): Promise<void> {
  const inputs = await readStepInputs(store, refs);
  let archiveError: unknown;
  const archive = stepInputsArchive(inputs, (jobId, sha256) => store.openBlob(jobId, sha256));
  archive.on('error', (err) => (archiveError ??= err));
  try {
    await container.putArchive(archive, { path: INPUTS_DIR });
  } catch (err) {
    throw archiveError ?? err;
  }
  if (archiveError) throw archiveError;
}
