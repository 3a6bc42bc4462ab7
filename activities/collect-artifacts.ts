/**
 * The collect activity's body: the files of a holding container's working directory that the
 * job's globs match, streamed out of the running container (a `tar` of /work run as the job's
 * user) through tar-stream into the artifact store, one file at a time, never held whole in
 * memory. The host filters again: regular files only (links are never followed, here or in
 * tar), safe relative names, the globs, `maxBytes`. The manifest is written last, so a retried
 * collection (its worker died) redoes it from the start and ends with the same artifacts, once.
 */
import type { Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import { extract, type Header } from 'tar-stream';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { artifactMatcher, safeArtifactPath, type ArtifactEntry, type ArtifactsSummary } from '../domain/artifacts.js';
import { SMALL_BLOB_BYTES, STREAM_CHUNK_BYTES, type ArtifactStore } from '../artifact-store/artifact-store.js';
import type { LogStore } from '../log-store/log-store.js';
import { WORK_DIR } from './container-spec.js';
import { execInContainer } from './container-exec.js';
import type { CollectArtifactsInput } from './types.js';

export interface CollectDeps {
  container: Docker.Container;
  store: ArtifactStore;
  logStore: LogStore;
}

/** Exit code of the collecting shell when the image has no `tar`. */
const NO_TAR = 127;

/** Small files stored at once. */
const SMALL_WRITES_IN_FLIGHT = 16;

/** Names of left-out files quoted in the system line, at most. */
const QUOTED = 5;

export async function collectFromContainer(
  ctx: Context,
  deps: CollectDeps,
  input: CollectArtifactsInput,
): Promise<ArtifactsSummary> {
  const { jobId, attempt } = input;
  if (input.holdSkipped) {
    const skipped = `[hodei] artifacts not collected: ${input.holdSkipped}`;
    await systemLine(deps.logStore, jobId, attempt, skipped);
    return { count: 0, bytes: 0, truncated: false, skipped };
  }
  const run = await execInContainer(deps.container, [
    '/bin/sh',
    '-c',
    `command -v tar >/dev/null 2>&1 || exit ${NO_TAR}; exec tar -c -f - --numeric-owner -C ${WORK_DIR} .`,
  ]);
  const matches = artifactMatcher(input.artifacts.paths);
  const kept = new Map<string, ArtifactEntry>();
  const leftOut: string[] = [];
  let bytes = 0;
  let overCap = false;
  let unsafe = 0;
  /** Writes of small files under way: at most SMALL_WRITES_IN_FLIGHT (each at most SMALL_BLOB_BYTES). */
  const inFlight = new Set<Promise<void>>();
  const timer = setInterval(() => ctx.heartbeat({ files: kept.size, bytes }), 1000);
  try {
    await readArchive(run.stdout, async (header, open) => {
      const name = header.name.replace(/^\.\//, '').replace(/\/$/, '');
      if (header.type !== 'file' || name === '' || name === '.' || !matches(name)) return false;
      if (!safeArtifactPath(name)) {
        unsafe += 1;
        return false;
      }
      const size = header.size ?? 0;
      if (bytes + size > input.artifacts.maxBytes) {
        overCap = true;
        leftOut.push(name);
        return false;
      }
      const mode = (header.mode ?? 0o644) & 0o777;
      if (size > SMALL_BLOB_BYTES) {
        const blob = await deps.store.putBlob(jobId, open());
        bytes += blob.size;
        kept.set(name, { path: name, size: blob.size, sha256: blob.sha256, mode });
        return true;
      }
      // A small file: read whole (bounded), stored while the next ones are read.
      const data = await buffer(open());
      bytes += data.length;
      const write = deps.store.putSmallBlob(jobId, data).then((blob) => {
        kept.set(name, { path: name, size: blob.size, sha256: blob.sha256, mode });
      });
      inFlight.add(write);
      void write.finally(() => inFlight.delete(write)).catch(() => undefined);
      if (inFlight.size >= SMALL_WRITES_IN_FLIGHT) await Promise.race(inFlight);
      return true;
    });
    await Promise.all(inFlight);
  } finally {
    clearInterval(timer);
    await Promise.allSettled(inFlight);
  }
  const { exitCode, stderr } = await run.result();
  if (exitCode === NO_TAR) {
    const skipped = '[hodei] artifacts not collected: the image has no tar';
    await systemLine(deps.logStore, jobId, attempt, skipped);
    return { count: 0, bytes: 0, truncated: false, skipped };
  }
  // tar went on past files it could not read (a file the job made unreadable, one removed
  // meanwhile) and said so: what it left out is missing from the artifacts.
  const tarFailed = exitCode !== 0;
  const truncated = overCap || unsafe > 0 || tarFailed;
  const artifacts = [...kept.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  await deps.store.writeManifest({ jobId, attempt, artifacts, truncated, collectedAt: new Date().toISOString() });
  if (truncated) {
    const parts: string[] = [];
    if (overCap) {
      const quoted = leftOut.slice(0, QUOTED).map((n) => JSON.stringify(n));
      const more = leftOut.length > QUOTED ? ` and ${leftOut.length - QUOTED} more` : '';
      parts.push(
        `${leftOut.length} file(s) over artifacts.maxBytes (${input.artifacts.maxBytes} bytes) left out: ${quoted.join(', ')}${more}`,
      );
    }
    if (unsafe > 0)
      parts.push(`${unsafe} file(s) with names that cannot be served (control characters, too long) left out`);
    if (tarFailed) parts.push(`tar in the container exited ${exitCode}: ${tarMessages(stderr)}`);
    await systemLine(deps.logStore, jobId, attempt, `[hodei] artifacts truncated: ${parts.join('; ')}`);
  }
  return { count: artifacts.length, bytes, truncated };
}

/** The first few of tar's messages, one line (its closing "Exiting with failure status" left out). */
function tarMessages(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !/Exiting with failure status/.test(line));
  if (lines.length === 0) return 'no message';
  const more = lines.length > QUOTED ? ` and ${lines.length - QUOTED} more` : '';
  return `${lines.slice(0, QUOTED).join('; ')}${more}`;
}

/**
 * Reads a tar stream entry by entry; `onEntry` stores the body (`open` gives it as a Node
 * stream) or declines it (then it is drained here). One entry at a time: back-pressure reaches the container's tar.
 */
function readArchive(
  archive: Readable,
  onEntry: (header: Header, open: () => Readable) => Promise<boolean>,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const tar = extract();
    tar.on('entry', (header, body, next) => {
      // tar-stream's entries are streamx streams: a Node stream over them, back-pressure kept.
      onEntry(header, () => Readable.from(body, { objectMode: false, highWaterMark: STREAM_CHUNK_BYTES })).then(
        (consumed) => {
          if (consumed) next();
          else {
            body.on('end', next);
            body.resume();
          }
        },
        (err: unknown) => tar.destroy(err as Error),
      );
    });
    tar.on('finish', resolve);
    tar.on('error', reject);
    // Written by hand: Node's pipe into a streamx Writable does not end it.
    void (async () => {
      for await (const chunk of archive) {
        if (!tar.write(chunk as Buffer)) await new Promise<void>((resume) => tar.once('drain', () => resume()));
      }
      (tar as unknown as NodeJS.WritableStream).end();
    })().catch((err: unknown) => tar.destroy(err as Error));
  });
}

/** A `system` line in the job's log, once (a retried collection finds it there). */
export async function systemLine(logStore: LogStore, jobId: string, attempt: number, line: string): Promise<void> {
  const last = await logStore.lastSeq(jobId);
  const [previous] = last > 0 ? await logStore.read(jobId, { afterSeq: last - 1, limit: 1 }) : [];
  if (previous?.stream === 'system' && previous.line === line) return;
  await logStore.append(jobId, [{ seq: last + 1, stream: 'system', ts: Date.now(), line, attempt }]);
}
