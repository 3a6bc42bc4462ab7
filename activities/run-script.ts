import type { Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { Readable } from 'node:stream';
import type { RunProgress, ScriptOutcome } from '../domain/job-result.js';
import type { LogLine, LogStore, LogStream } from '../log-store/log-store.js';
import { containerLost, isNotFound } from './docker-errors.js';
import { LineSplitter } from './line-splitter.js';
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

/**
 * The run activity's body. Output is read through Docker's log endpoint rather than attach, so
 * a retried activity (after its worker died) reads the same output again from the start and
 * skips the lines already stored: line numbering is the same on every read.
 *
 * Seq n is always the n-th line of output. Past the log cap lines are still read (the container
 * never blocks on a full pipe) and counted, but not stored; the one `system` line saying how much
 * was dropped takes the seq of the first dropped line, written once the output has ended. So the
 * numbering never depends on when a worker died, and a job's lines become readable in seq order.
 */
export async function runScriptInContainer(ctx: Context, deps: RunScriptDeps): Promise<ScriptOutcome> {
  const { container, logStore, jobId, attempt } = deps;
  const prior = ctx.info.heartbeatDetails as RunProgress | undefined;
  // A later attempt continues the job's numbering, after a system line that marks its start.
  const seqBase = prior?.seqBase ?? (attempt > 1 ? await attemptSeqBase(logStore, jobId, attempt) : 0);
  if (attempt > 1) await logStore.append(jobId, [attemptMarker(seqBase, attempt)]);
  const alreadyStored = Math.max(prior?.lastSeq ?? 0, await logStore.lastSeq(jobId));
  // Recorded before the container starts, so a retry of this run reuses the same numbering.
  ctx.heartbeat({ containerId: container.id, lastSeq: alreadyStored, seqBase } satisfies RunProgress);

  const state = await inspect(container);
  const mask = secretMasker(containerSecrets(state.Config));
  if (state.State.Status === 'created') {
    await container.start();
  } else {
    ctx.log.info('reattaching to container', { jobId, containerId: container.id, alreadyStored });
  }

  let seq = attempt > 1 ? seqBase + 1 : 0;
  let lastSeq = alreadyStored;
  let batch: LogLine[] = [];
  const cap = new LogCap(deps.logMaxBytes);
  const lineSink = (stream: LogStream) =>
    new LineSplitter((raw) => {
      seq += 1;
      // Masked before anything else sees the line: secrets never reach the log store.
      const line = mask(raw);
      if (cap.keep(seq, line) && seq > alreadyStored) batch.push({ seq, stream, ts: Date.now(), line, attempt });
    });
  const stdout = lineSink('stdout');
  const stderr = lineSink('stderr');
  const position = new LogPosition();
  const flush = async () => {
    if (batch.length === 0) return;
    const lines = batch;
    batch = [];
    await logStore.append(jobId, lines);
    lastSeq = lines[lines.length - 1]!.seq;
  };

  const heartbeat = () => ctx.heartbeat({ containerId: container.id, lastSeq, seqBase } satisfies RunProgress);
  heartbeat();
  const heartbeats = setInterval(heartbeat, deps.heartbeatIntervalMs);

  let stopping: Promise<void> | undefined;
  const detach = new AbortController();
  // Runs outside the activity's async context: use ctx, never the module-level helpers.
  const onCancel = () => {
    const details = ctx.cancellationDetails;
    // A worker shutting down, or a server that gave up on this attempt, leaves the container
    // running: the next attempt reattaches to it. Anything else is a real stop.
    if (details?.workerShutdown || details?.timedOut) {
      detach.abort();
      return;
    }
    ctx.log.info('stopping container', { jobId, containerId: container.id, graceSeconds: deps.cancelGraceSeconds });
    stopping = stopContainer(container, deps.cancelGraceSeconds);
    // Observed here so a failed stop never becomes an unhandled rejection; awaited below.
    stopping.catch(() => undefined);
  };
  ctx.cancellationSignal.addEventListener('abort', onCancel, { once: true });

  try {
    const output = (await container.logs({ follow: true, stdout: true, stderr: true, timestamps: true })) as unknown as Readable;
    await pumpOutput(output, position.reader(stdout, stderr), () => batch.length, flush, detach.signal);
    if (detach.signal.aborted) {
      await flush();
      heartbeat();
      throw ctx.cancellationSignal.reason;
    }
    if (stopping) await stopping;
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    // A follow read can end before Docker has written a stopped container's last messages (a
    // late stderr line, a final line without newline): read again what came after it.
    const { since, skip } = position.resumePoint();
    // (A follow read of a stopped container ends at the end of its log, and streams.)
    const rest = (await container.logs({ follow: true, stdout: true, stderr: true, timestamps: true, since })) as unknown as Readable;
    position.skip(skip);
    await pumpOutput(rest, position.reader(stdout, stderr), () => batch.length, flush, detach.signal);
    // The output has ended: the last lines and the cap marker are final.
    stdout.flush();
    stderr.flush();
    const marker = cap.marker(attempt);
    if (marker) batch.push(marker);
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
    return { exitCode: StatusCode, oomKilled: finished.State.OOMKilled, startedAt, finishedAt, lastSeq };
  } finally {
    clearInterval(heartbeats);
    ctx.cancellationSignal.removeEventListener('abort', onCancel);
  }
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

/** Counts stored bytes against the per-job cap and what is dropped past it. */
export class LogCap {
  private storedBytes = 0;
  private firstDropped = 0;
  private droppedLines = 0;
  private droppedBytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Whether line `seq` is within the cap. */
  keep(seq: number, line: string): boolean {
    const bytes = Buffer.byteLength(line) + 1;
    if (this.firstDropped === 0 && this.storedBytes + bytes <= this.maxBytes) {
      this.storedBytes += bytes;
      return true;
    }
    if (this.firstDropped === 0) this.firstDropped = seq;
    this.droppedLines += 1;
    this.droppedBytes += bytes;
    return false;
  }

  /** The line that says what was dropped, in the first dropped line's place; none under the cap. */
  marker(attempt: number): LogLine | undefined {
    if (this.firstDropped === 0) return undefined;
    return {
      seq: this.firstDropped,
      stream: 'system',
      ts: Date.now(),
      line:
        `[hodei] log truncated: output over the ${this.maxBytes}-byte log cap was not stored ` +
        `(${this.droppedLines} lines, ${this.droppedBytes} bytes dropped)`,
      attempt,
    };
  }
}

/**
 * Reads Docker's multiplexed log stream (frames of an 8-byte header — stream type, 3 zero bytes,
 * big-endian length — then the payload) and hands each frame to `onFrame`, storing each chunk's
 * complete lines before reading on, so memory stays bounded whatever the output's size. Resolves
 * when the output ends (the container stopped), or on `detach`, when the activity lets go of a
 * container that goes on running. (dockerode's demuxStream copies the rest of its buffer for
 * every frame, quadratic in a chunk's frame count: far too slow for a million short lines.)
 */
function pumpOutput(
  output: Readable,
  onFrame: (streamType: number, payload: Buffer) => void,
  pendingLines: () => number,
  flush: () => Promise<void>,
  detach: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0);
    let flushing: Promise<void> | undefined;
    let scheduled = false;
    let done = false;
    // One store write at a time, with the stream paused meanwhile (back-pressure to Docker).
    const store = () => {
      if (done || flushing || pendingLines() === 0) return;
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
      // Docker sends a chunk per message: store in batches, once the chunks already received are
      // split (setImmediate runs after pending I/O), or at once when a batch is large.
      if (pendingLines() >= MAX_BATCH_LINES) store();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(() => {
          scheduled = false;
          store();
        });
      }
    });
    const finish = () => {
      done = true;
      // The caller stores what is left; never while a write is in flight (writes stay in order).
      void (flushing ?? Promise.resolve()).then(() => resolve());
    };
    output.once('end', finish);
    output.once('close', finish);
    output.once('error', reject);
    detach.addEventListener(
      'abort',
      () => {
        output.destroy();
        finish();
      },
      { once: true },
    );
  });
}

/** Lines stored in one write at most. */
const MAX_BATCH_LINES = 2000;

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
