import type { Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import { Writable, type Readable } from 'node:stream';
import type { RunProgress, ScriptOutcome } from '../domain/job-result.js';
import type { LogLine, LogStore, LogStream } from '../log-store/log-store.js';
import { containerLost, isNotFound } from './docker-errors.js';
import { LineSplitter } from './line-splitter.js';

export interface RunScriptDeps {
  container: Docker.Container;
  modem: Docker['modem'];
  logStore: LogStore;
  jobId: string;
  attempt: number;
  cancelGraceSeconds: number;
  heartbeatIntervalMs: number;
}

/**
 * The run activity's body. Output is read through Docker's log endpoint rather than attach, so
 * a retried activity (after its worker died) reads the same output again from the start and
 * skips the lines already stored: line numbering is the same on every read.
 */
export async function runScriptInContainer(ctx: Context, deps: RunScriptDeps): Promise<ScriptOutcome> {
  const { container, logStore, jobId, attempt } = deps;
  const prior = ctx.info.heartbeatDetails as RunProgress | undefined;
  const alreadyStored = Math.max(prior?.lastSeq ?? 0, await logStore.lastSeq(jobId));

  const state = await inspect(container);
  if (state.State.Status === 'created') {
    await container.start();
  } else {
    ctx.log.info('reattaching to container', { jobId, containerId: container.id, alreadyStored });
  }

  let seq = 0;
  let lastSeq = alreadyStored;
  let batch: LogLine[] = [];
  const lineSink = (stream: LogStream) =>
    new LineSplitter((line) => {
      seq += 1;
      if (seq > alreadyStored) batch.push({ seq, stream, ts: Date.now(), line, attempt });
    });
  const stdout = lineSink('stdout');
  const stderr = lineSink('stderr');
  const flush = async () => {
    if (batch.length === 0) return;
    const lines = batch;
    batch = [];
    await logStore.append(jobId, lines);
    lastSeq = lines[lines.length - 1]!.seq;
  };

  const heartbeat = () => ctx.heartbeat({ containerId: container.id, lastSeq } satisfies RunProgress);
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
    const output = (await container.logs({ follow: true, stdout: true, stderr: true })) as unknown as Readable;
    await pumpOutput(output, deps.modem, stdout, stderr, flush, detach.signal);
    stdout.flush();
    stderr.flush();
    await flush();
    if (stopping) await stopping;
    if (ctx.cancellationSignal.aborted) {
      heartbeat();
      throw ctx.cancellationSignal.reason;
    }
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const finished = await inspect(container);
    return {
      exitCode: StatusCode,
      oomKilled: finished.State.OOMKilled,
      startedAt: finished.State.StartedAt,
      finishedAt: finished.State.FinishedAt,
      lastSeq,
    };
  } finally {
    clearInterval(heartbeats);
    ctx.cancellationSignal.removeEventListener('abort', onCancel);
  }
}

/**
 * Demultiplexes Docker's stdout/stderr frames into the two line splitters, storing each chunk's
 * complete lines before reading on. Resolves when the container's output ends (it stopped), or
 * on `detach`, when the activity lets go of a container that goes on running.
 */
function pumpOutput(
  output: Readable,
  modem: Docker['modem'],
  stdout: LineSplitter,
  stderr: LineSplitter,
  flush: () => Promise<void>,
  detach: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const sink = (splitter: LineSplitter) =>
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          splitter.push(chunk);
          callback();
        },
      });
    modem.demuxStream(output, sink(stdout), sink(stderr));
    // Registered after demuxStream's own listener, so each chunk is split before it is stored.
    output.on('data', () => {
      output.pause();
      flush().then(
        () => output.resume(),
        (err: unknown) => {
          output.destroy();
          reject(err);
        },
      );
    });
    output.once('end', resolve);
    output.once('close', resolve);
    output.once('error', reject);
    detach.addEventListener(
      'abort',
      () => {
        output.destroy();
        resolve();
      },
      { once: true },
    );
  });
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
