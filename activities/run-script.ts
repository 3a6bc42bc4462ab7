import type { Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { Readable } from 'node:stream';
import type { RunProgress, ScriptOutcome } from '../domain/job-result.js';
import type { LogLine, LogStore } from '../log-store/log-store.js';
import { containerLost, isNotFound } from './docker-errors.js';
import type { LineSplitter } from './line-splitter.js';
import { advanceOverStored, OutputLines, startOfOutput, type OutputPosition } from './output-lines.js';
import { containerSecrets, secretMasker } from './secret-mask.js';

export interface RunScriptDeps {
  container: Docker.Container;
  modem: Docker['modem'];
  logStore: LogStore;
  jobId: string;
  attempt: number;
  cancelGraceSeconds: number;
  heartbeatIntervalMs: number;
  /** Most bytes of output stored per job; the rest is read and dropped. */
  logMaxBytes: number;
}

/** Heartbeat details of the run activity: `RunProgress`, and where the output's numbering stands. */
export interface RunHeartbeat extends RunProgress {
  /**
   * The last checkpoint: every line it counts is stored, or dropped past the cap. Absent from the
   * heartbeats of workers from before it (then the store says where the numbering stands).
   */
  output?: OutputPosition;
}

/**
 * The run activity's body. The output is read live through an attach opened before the container
 * starts: the raw stream, as the container writes it. Docker's log endpoint re-reads the log file
 * and sends a frame and a timestamp per line, several times slower; it is the way back in for a
 * retried activity (its worker died) and for an attach that broke.
 *
 * Seq n is always the n-th line of output as this job's runs read it, each line exactly once:
 * a checkpoint in the heartbeat says how many lines of each stream were numbered with all of
 * them stored, and the rows stored after it say the rest (see `OutputPosition`). A read of the
 * whole output after a reattach skips that many lines of each stream and goes on numbering.
 * Past the log cap lines are still read (the container never blocks on a full pipe) and counted,
 * but not stored; the one `system` line saying how much was dropped takes the seq of the first
 * dropped line, written once the output has ended.
 */
export async function runScriptInContainer(ctx: Context, deps: RunScriptDeps): Promise<ScriptOutcome> {
  const { container, logStore, jobId, attempt } = deps;
  const prior = ctx.info.heartbeatDetails as RunHeartbeat | undefined;
  // A later attempt continues the job's numbering, after a system line that marks its start.
  const seqBase = prior?.seqBase ?? (attempt > 1 ? await attemptSeqBase(logStore, jobId, attempt) : 0);
  if (attempt > 1) await logStore.append(jobId, [attemptMarker(seqBase, attempt)]);
  let checkpoint = await advanceOverStored(logStore, jobId, prior?.output ?? startOfOutput(attempt, seqBase));
  let lastSeq = Math.max(prior?.lastSeq ?? 0, await logStore.lastSeq(jobId));
  const heartbeat = () => ctx.heartbeat({ containerId: container.id, lastSeq, seqBase, output: checkpoint } satisfies RunHeartbeat);
  // Recorded before the container starts, so a retry of this run reuses the same numbering.
  heartbeat();

  const state = await inspect(container);
  const lines = new OutputLines(checkpoint, deps.logMaxBytes, secretMasker(containerSecrets(state.Config)), attempt);
  let attached: Readable | undefined;
  if (state.State.Status === 'created') {
    // Attached before the start, so it sees the output from its first byte.
    attached = (await container.attach({ stream: true, stdout: true, stderr: true })) as unknown as Readable;
    // Until the pump listens: a connection that fails meanwhile is seen as destroyed there.
    attached.on('error', () => undefined);
    try {
      await container.start();
    } catch (err) {
      attached.destroy();
      throw err;
    }
  } else {
    ctx.log.info('reattaching to container', { jobId, containerId: container.id, position: checkpoint });
  }

  // One store write at a time; once it is done, every line numbered before it is stored (or
  // dropped past the cap): a checkpoint.
  let storing = Promise.resolve();
  const flush = () => {
    storing = storing.then(async () => {
      const position = lines.position();
      const batch = lines.take();
      if (batch.length > 0) {
        await logStore.append(jobId, batch);
        lastSeq = batch[batch.length - 1]!.seq;
      }
      checkpoint = position;
    });
    return storing;
  };
  const heartbeats = setInterval(heartbeat, deps.heartbeatIntervalMs);

  let stopping: Promise<void> | undefined;
  const detach = new AbortController();
  // Runs outside the activity's async context: use ctx, never the module-level helpers.
  const onCancel = () => {
    const details = ctx.cancellationDetails;
    // A worker shutting down, or a server that gave up on this attempt, leaves the container
    // running: the next attempt reattaches to it. So does a server that no longer knows the
    // attempt (`notFound`): it timed the attempt out while it could not hear from it (a Temporal
    // restart longer than the heartbeat timeout) and runs another, which reattaches; or the
    // workflow is gone, and the reaper removes the container. Anything else is a real stop.
    if (details?.workerShutdown || details?.timedOut || details?.notFound) {
      detach.abort();
      return;
    }
    ctx.log.info('stopping container', { jobId, containerId: container.id, graceSeconds: deps.cancelGraceSeconds });
    stopping = stopContainer(container, deps.cancelGraceSeconds);
    // Observed here so a failed stop never becomes an unhandled rejection; awaited below.
    stopping.catch(() => undefined);
  };
  ctx.cancellationSignal.addEventListener('abort', onCancel, { once: true });
  // Lets go of a container that goes on running: what was read is stored, the next attempt
  // reattaches from the checkpoint.
  const letGo = async (): Promise<never> => {
    await flush();
    heartbeat();
    throw ctx.cancellationSignal.reason;
  };
  const pending = () => lines.pending;

  try {
    let complete = false;
    if (attached) {
      const splitters = lines.reread();
      const end = await pumpOutput(attached, (type, payload) => (type === 2 ? splitters.stderr : splitters.stdout).push(payload), pending, flush, detach.signal);
      // An attach ends when the container's output does, so the container stops right after (its
      // init holds the output open until then); one that broke or ended early is read again below.
      complete = end.how === 'end' && (await stopsSoon(container, detach.signal));
      if (!complete && !detach.signal.aborted) {
        ctx.log.warn('attach to the container broke: reading its output from the log', { jobId, containerId: container.id, how: end.how, error: String(end.error) });
      }
    }
    if (detach.signal.aborted) await letGo();
    if (!complete) {
      await readLog(container, lines, pending, flush, detach.signal, () => stopping);
      if (detach.signal.aborted) await letGo();
    }
    if (stopping) await stopping;
    const exitCode = await waitForExit(container, detach.signal);
    if (exitCode === undefined) return await letGo();
    // The output has ended: the last lines and the cap marker are final.
    lines.end();
    await flush();
    if (ctx.cancellationSignal.aborted) {
      heartbeat();
      throw ctx.cancellationSignal.reason;
    }
    const finished = await inspect(container);
    // Docker stamps a very short-lived process's start after its exit at times: never report a
    // negative run time.
    const finishedAt = finished.State.FinishedAt;
    const startedAt = Date.parse(finished.State.StartedAt) > Date.parse(finishedAt) ? finishedAt : finished.State.StartedAt;
    return { exitCode, oomKilled: finished.State.OOMKilled, startedAt, finishedAt, lastSeq };
  } finally {
    clearInterval(heartbeats);
    ctx.cancellationSignal.removeEventListener('abort', onCancel);
    attached?.destroy();
  }
}

/**
 * Reads the container's whole output through the log endpoint, following it until the container
 * stops, skipping the lines already numbered (per stream).
 */
async function readLog(
  container: Docker.Container,
  lines: OutputLines,
  pending: () => number,
  flush: () => Promise<void>,
  detach: AbortSignal,
  stopping: () => Promise<void> | undefined,
): Promise<void> {
  const splitters = lines.reread();
  const position = new LogPosition();
  const read = async (since: number) => {
    const output = (await container.logs({ follow: true, stdout: true, stderr: true, timestamps: true, since })) as unknown as Readable;
    const end = await pumpOutput(output, position.reader(splitters.stdout, splitters.stderr), pending, flush, detach);
    if (end.how === 'error') throw end.error;
  };
  await read(0);
  if (detach.aborted) return;
  await stopping();
  if ((await waitForExit(container, detach)) === undefined) return;
  // A follow read can end before Docker has written a stopped container's last messages (a
  // late stderr line, a final line without newline): read again what came after it.
  // (A follow read of a stopped container ends at the end of its log, and streams.)
  const { since, skip } = position.resumePoint();
  position.skip(skip);
  await read(since);
}

/**
 * Where a read of the container's log has got to, from Docker's per-message timestamps (second
 * precision is enough): messages seen per second of their timestamp, for the last few seconds.
 * A second read `since` a little before the last one seen returns, in the log's order, first the
 * messages already seen there (the first read saw a prefix of the log), then the new ones.
 */
export class LogPosition {
  private readonly perSecond = new Map<number, number>();
  private latest = 0;
  private toSkip = 0;
  private lastStamp = '';
  private lastSecond = NaN;

  /** Takes demuxed frames (one frame = one timestamped message) to the splitters. */
  reader(stdout: LineSplitter, stderr: LineSplitter): (streamType: number, frame: Buffer) => void {
    return (streamType, frame) => {
      const content = this.message(frame);
      if (content) (streamType === 2 ? stderr : stdout).push(content);
    };
  }

  /** Where to read from again, and how many messages there were seen already. */
  resumePoint(): { since: number; skip: number } {
    if (this.latest === 0) return { since: 0, skip: 0 };
    // Two seconds back: stdout and stderr are logged by separate copiers, so timestamps in the
    // log are not quite in order.
    const since = this.latest - 2;
    let skip = 0;
    for (const [second, count] of this.perSecond) if (second >= since) skip += count;
    return { since, skip };
  }

  /** The next `count` messages were seen before: drop them. */
  skip(count: number): void {
    this.toSkip = count;
  }

  /** The message's content without its timestamp; undefined for a message to skip. */
  private message(frame: Buffer): Buffer | undefined {
    if (this.toSkip > 0) {
      this.toSkip -= 1;
      return undefined;
    }
    const space = frame.indexOf(0x20);
    if (space <= 0) return frame;
    const stamp = frame.toString('latin1', 0, 19);
    if (stamp !== this.lastStamp) {
      this.lastStamp = stamp;
      this.lastSecond = Math.floor(Date.parse(`${stamp}Z`) / 1000);
    }
    const second = this.lastSecond;
    if (Number.isNaN(second)) return frame;
    this.perSecond.set(second, (this.perSecond.get(second) ?? 0) + 1);
    if (second > this.latest) {
      this.latest = second;
      for (const s of this.perSecond.keys()) if (s < second - 10) this.perSecond.delete(s);
    }
    return frame.subarray(space + 1);
  }
}

/** How a read of the output ended: its end, a close or an error before that, or `detach`. */
type PumpEnd = { how: 'end' | 'close' | 'detach'; error?: undefined } | { how: 'error'; error: unknown };

/**
 * Reads Docker's multiplexed output stream (frames of an 8-byte header — stream type, 3 zero bytes,
 * big-endian length — then the payload) and hands each frame to `onFrame`, storing each chunk's
 * complete lines before reading on, so memory stays bounded whatever the output's size. Resolves
 * when the stream ends (the container stopped) or breaks, or on `detach`, when the activity lets
 * go of a container that goes on running; rejects when storing fails. (dockerode's demuxStream
 * copies the rest of its buffer for every frame, quadratic in a chunk's frame count: far too slow
 * for a million short lines.)
 */
function pumpOutput(
  output: Readable,
  onFrame: (streamType: number, payload: Buffer) => void,
  pendingLines: () => number,
  flush: () => Promise<void>,
  detach: AbortSignal,
): Promise<PumpEnd> {
  return new Promise<PumpEnd>((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0);
    let flushing: Promise<void> | undefined;
    let scheduled = false;
    let ended: PumpEnd | undefined;
    // One store write at a time, with the stream paused meanwhile (back-pressure to Docker).
    const store = () => {
      if (ended || flushing || pendingLines() === 0) return;
      output.pause();
      flushing = flush().then(
        () => {
          flushing = undefined;
          if (!output.destroyed) output.resume();
        },
        (err: unknown) => {
          output.destroy();
          reject(err);
        },
      );
    };
    output.on('data', (chunk: Buffer) => {
      const buf = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
      let offset = 0;
      while (buf.length - offset >= 8) {
        const size = buf.readUInt32BE(offset + 4);
        if (buf.length - offset - 8 < size) break;
        onFrame(buf[offset]!, buf.subarray(offset + 8, offset + 8 + size));
        offset += 8 + size;
      }
      // Copied, so a small remainder never pins a whole chunk.
      pending = Buffer.from(buf.subarray(offset));
      // Store in batches, once the chunks already received are split (setImmediate runs after
      // pending I/O), or at once when a batch is large.
      if (pendingLines() >= MAX_BATCH_LINES) store();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(() => {
          scheduled = false;
          store();
        });
      }
    });
    const finish = (end: PumpEnd) => {
      if (ended) return;
      ended = end;
      // The caller stores what is left; never while a write is in flight (writes stay in order).
      void (flushing ?? Promise.resolve()).then(() => resolve(end));
    };
    // A stream that broke before it was handed here.
    if (output.destroyed) finish(output.errored ? { how: 'error', error: output.errored } : { how: 'close' });
    output.once('end', () => finish({ how: 'end' }));
    output.once('close', () => finish({ how: 'close' }));
    output.once('error', (error: unknown) => finish({ how: 'error', error }));
    detach.addEventListener(
      'abort',
      () => {
        finish({ how: 'detach' });
        output.destroy();
      },
      { once: true },
    );
  });
}

/** Lines stored in one write at most. */
const MAX_BATCH_LINES = 2000;

/** Whether the container stops within a couple of seconds (or `detach` lets go of it first). */
async function stopsSoon(container: Docker.Container, detach: AbortSignal): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const exit = waitForExit(container, detach).then(() => true);
  // Observed here so a later failure of the wait never becomes an unhandled rejection.
  exit.catch(() => undefined);
  try {
    return await Promise.race([exit, new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The container's exit code once it has stopped; undefined when `detach` lets go of it first. */
async function waitForExit(container: Docker.Container, detach: AbortSignal): Promise<number | undefined> {
  try {
    const { StatusCode } = (await container.wait({ abortSignal: detach })) as { StatusCode: number };
    return StatusCode;
  } catch (err) {
    if (detach.aborted) return undefined;
    throw err;
  }
}

async function stopContainer(container: Docker.Container, graceSeconds: number): Promise<void> {
  try {
    // Docker sends SIGTERM (forwarded by docker-init to the process group), then SIGKILL after t.
    await container.stop({ t: graceSeconds });
  } catch (err) {
    // 304: already stopped; 404: already gone.
    const status = (err as { statusCode?: number }).statusCode;
    if (status !== 304 && !isNotFound(err)) throw err;
  }
}

async function inspect(container: Docker.Container): Promise<Docker.ContainerInspectInfo> {
  try {
    return await container.inspect();
  } catch (err) {
    if (isNotFound(err)) throw containerLost(container.id);
    throw err;
  }
}

const attemptMarkerText = (attempt: number) => `[hodei] attempt ${attempt} started`;

function attemptMarker(seqBase: number, attempt: number): LogLine {
  return { seq: seqBase + 1, stream: 'system', ts: Date.now(), line: attemptMarkerText(attempt), attempt };
}

/** Where a later attempt's lines start: after everything stored so far (its own marker excepted). */
async function attemptSeqBase(logStore: LogStore, jobId: string, attempt: number): Promise<number> {
  const last = await logStore.lastSeq(jobId);
  const [line] = await logStore.read(jobId, { afterSeq: last - 1, limit: 1 });
  const ownMarker = line?.stream === 'system' && line.attempt === attempt && line.line === attemptMarkerText(attempt);
  return ownMarker ? last - 1 : last;
}
