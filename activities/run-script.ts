import type { Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { Readable } from 'node:stream';
import type { LogLine, LogStore } from '../log-store/log-store.js';
import { containerLost, inspectContainer, isNotFound, stopContainer, stopsSoon, waitForExit } from './container-ops.js';
import { readScriptEnd } from './container-exec.js';
import { LogPosition, pumpOutput, type PumpEnd } from './docker-stream.js';
import { Heartbeats } from './heartbeats.js';
import { advanceOverStored, OutputLines, startOfOutput } from './output-lines.js';
import { containerSecrets, secretMasker } from './secret-mask.js';
import type { ScriptEnd } from './script-hold.js';
import type { OutputPosition, RunHeartbeat, ScriptOutcome } from './types.js';
import { attachAndRelease, isPoolContainer, poolSecrets } from './warm-pool.js';

export interface RunScriptDeps {
  container: Docker.Container;
  logStore: LogStore;
  jobId: string;
  attempt: number;
  cancelGraceSeconds: number;
  heartbeatIntervalMs: number;
  /**
   * The activity's heartbeats, beating since it started and on after this returns (through the
   * container's removal). Default: heartbeats of this run's own, from its start to its end.
   */
  heartbeats?: Heartbeats;
  /** Most bytes of output stored per job; the rest is read and dropped. */
  logMaxBytes: number;
  /** The container holds after the script (script-hold.ts): the script's end is its end marker. */
  holding?: boolean;
}

/** The runs going on in this process, by container: where `stopRunHere` finds the one to stop. */
const activeRuns = new Map<string, ScriptRun>();
/** Containers whose run was told to stop before it began here: it stops (or never starts) at once. */
const stopsAhead = new Set<string>();
/** Most early stops remembered (a run that never comes here leaves one behind). */
const MAX_STOPS_AHEAD = 1000;

/**
 * The job's cancel (or deadline), told to the container's host by the workflow (`stopRun`):
 * the container's run in this process stops it now (SIGTERM, SIGKILL after the grace period)
 * and ends as `cancelled`, without waiting for its next heartbeat to bring the cancel. A run
 * that has not begun here yet stops (or never starts the container) as soon as it begins. A run
 * in another process (never so with one worker per host) hears the cancel with its heartbeat.
 */
export function stopRunHere(containerId: string): 'stopping' | 'ahead' {
  const run = activeRuns.get(containerId);
  if (run) {
    run.stopForCancel();
    return 'stopping';
  }
  stopsAhead.add(containerId);
  if (stopsAhead.size > MAX_STOPS_AHEAD) stopsAhead.delete(stopsAhead.values().next().value!);
  return 'ahead';
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
  const prior = ctx.info.heartbeatDetails as RunHeartbeat | undefined;
  const own = deps.heartbeats ? undefined : new Heartbeats(ctx, prior).every(deps.heartbeatIntervalMs);
  try {
    const run = await ScriptRun.resume(ctx, deps, deps.heartbeats ?? own!, prior);
    return await run.run();
  } finally {
    own?.stop();
  }
}

/**
 * One attempt at running the script in its container, read top-down from `run`: where the
 * numbering stands, start (or reattach), read the output (the attach, else the log), wait for the
 * exit, report it. A cancel stops the container; any other abort lets go of it, running.
 */
class ScriptRun {
  private readonly container: Docker.Container;
  /** Set in `run`, once the container's secrets are known. */
  private lines!: OutputLines;
  /** One store write at a time: the latest one queued. */
  private storing = Promise.resolve();
  /** The container's stop, once the workflow cancelled the run. */
  private stopping: Promise<void> | undefined;
  /** Aborted to let go of the container (it goes on running). */
  private readonly detach = new AbortController();
  /** A holding container's script has ended: what its wrapper recorded, and when that was seen. */
  private scriptEnd: (ScriptEnd & { seenAt: string }) | undefined;
  /** When a warm container's script was released (its start: the container started long before). */
  private releasedAt: string | undefined;
  /** Its host was told the job was cancelled (`stopRunHere`): the run ends as `cancelled`. */
  private stoppedHere = false;

  private constructor(
    private readonly ctx: Context,
    private readonly deps: RunScriptDeps,
    private readonly beats: Heartbeats,
    private readonly seqBase: number,
    /** Every line numbered up to it is stored (or dropped past the cap). */
    private checkpoint: OutputPosition,
    private lastSeq: number,
  ) {
    this.container = deps.container;
  }

  /** Where this attempt's numbering stands: after the job's earlier attempts and what a prior try of it stored. */
  static async resume(
    ctx: Context,
    deps: RunScriptDeps,
    beats: Heartbeats,
    prior: RunHeartbeat | undefined,
  ): Promise<ScriptRun> {
    const { logStore, jobId, attempt } = deps;
    // A later attempt continues the job's numbering, after a system line that marks its start.
    const seqBase = prior?.seqBase ?? (attempt > 1 ? await attemptSeqBase(logStore, jobId, attempt) : 0);
    if (attempt > 1) await logStore.append(jobId, [attemptMarker(seqBase, attempt)]);
    const checkpoint = await advanceOverStored(logStore, jobId, prior?.output ?? startOfOutput(attempt, seqBase));
    const lastSeq = Math.max(prior?.lastSeq ?? 0, await logStore.lastSeq(jobId));
    const run = new ScriptRun(ctx, deps, beats, seqBase, checkpoint, lastSeq);
    run.releasedAt = prior?.releasedAt;
    return run;
  }

  async run(): Promise<ScriptOutcome> {
    const { container } = this;
    activeRuns.set(container.id, this);
    try {
      if (stopsAhead.delete(container.id)) this.stopForCancel();
      return await this.runHere();
    } finally {
      if (activeRuns.get(container.id) === this) activeRuns.delete(container.id);
    }
  }

  /** Stops the container for the job's cancel, once; the run then ends as `cancelled`. */
  stopForCancel(): void {
    if (this.stoppedHere) return;
    this.stoppedHere = true;
    if (this.stopping) return;
    this.ctx.log.info('stopping container: its host was told the job is cancelled', {
      jobId: this.deps.jobId,
      containerId: this.container.id,
      graceSeconds: this.deps.cancelGraceSeconds,
    });
    this.stopping = stopContainer(this.container, this.deps.cancelGraceSeconds);
    // Observed here so a failed stop never becomes an unhandled rejection; awaited below.
    this.stopping.catch(() => undefined);
  }

  /** A run stopped before its script could start: nothing ran, the cleanup removes the container. */
  private notStarted(): ScriptOutcome {
    const now = new Date().toISOString();
    return { exitCode: -1, oomKilled: false, startedAt: now, finishedAt: now, lastSeq: this.lastSeq, cancelled: true };
  }

  private async runHere(): Promise<ScriptOutcome> {
    const { ctx, container } = this;
    // Recorded before the container starts, so a retry of this run reuses the same numbering.
    this.beats.carry(
      () =>
        ({
          containerId: container.id,
          lastSeq: this.lastSeq,
          seqBase: this.seqBase,
          output: this.checkpoint,
          ...(this.releasedAt && { releasedAt: this.releasedAt }),
        }) satisfies RunHeartbeat,
    );
    const state = await inspectContainer(container);
    // Warm pool hook: a claimed container's secrets are in its script volume, not its env.
    const pooled = isPoolContainer(state.Config.Labels);
    this.lines = new OutputLines(
      this.checkpoint,
      this.deps.logMaxBytes,
      secretMasker(pooled ? await poolSecrets(container) : containerSecrets(state.Config)),
      this.deps.attempt,
    );
    let attached: Readable | undefined;
    // Stopped for the job's cancel before its script could start (or be released): never start it.
    if (this.stoppedHere && (state.State.Status === 'created' || (pooled && !this.releasedAt))) {
      await this.stopping;
      return this.notStarted();
    }
    if (state.State.Status === 'created') {
      attached = await this.attachAndStart();
      if (!attached) return this.notStarted();
    }
    // Warm pool hook: a claimed container runs its launcher; the attach opens before its release.
    // A release a prior try recorded is never made again: that output is read from the log.
    else if (
      pooled &&
      !this.releasedAt &&
      (attached = await attachAndRelease(container, state.Config.Labels, ctx.cancellationSignal))
    )
      this.releasedAt ??= new Date().toISOString();
    else
      ctx.log.info('reattaching to container', {
        jobId: this.deps.jobId,
        containerId: container.id,
        position: this.checkpoint,
      });

    ctx.cancellationSignal.addEventListener('abort', this.onCancel, { once: true });
    // A cancel that came while the container was starting (slow on a loaded engine, and heartbeats
    // run meanwhile) aborted the signal before the listener was there: act on it now.
    if (ctx.cancellationSignal.aborted) this.onCancel();
    try {
      const complete = attached ? await this.readAttached(attached) : false;
      if (this.detach.signal.aborted) await this.letGo();
      if (!complete) {
        await this.readLog();
        if (this.detach.signal.aborted) await this.letGo();
      }
      if (this.stopping) await this.stopping;
      const exitCode = this.scriptEnd?.exitCode ?? (await waitForExit(container, this.detach.signal));
      if (exitCode === undefined) return await this.letGo();
      // The output has ended: the last lines and the cap marker are final.
      this.lines.end();
      await this.flush();
      if (ctx.cancellationSignal.aborted) {
        this.beats.beat();
        throw ctx.cancellationSignal.reason;
      }
      if (this.stoppedHere) return { ...(await this.outcome(exitCode)), cancelled: true };
      return await this.outcome(exitCode);
    } finally {
      ctx.cancellationSignal.removeEventListener('abort', this.onCancel);
      attached?.destroy();
    }
  }

  /**
   * Attaches to the created container and starts it; the attach sees the output from its first
   * byte. Undefined, not started, when its host was told to stop it meanwhile.
   */
  private async attachAndStart(): Promise<Readable | undefined> {
    const { ctx, container } = this;
    const attached = (await container.attach({ stream: true, stdout: true, stderr: true })) as unknown as Readable;
    // Until the pump listens: a connection that fails meanwhile is seen as destroyed there.
    attached.on('error', () => undefined);
    // Cancelled (or let go of) while attaching, heartbeating all the while: never start it. A
    // cancel's cleanup removes it unstarted; a retry after a let-go finds it created and starts it.
    if (ctx.cancellationSignal.aborted) {
      attached.destroy();
      throw ctx.cancellationSignal.reason;
    }
    if (this.stoppedHere) {
      attached.destroy();
      return undefined;
    }
    try {
      await container.start();
    } catch (err) {
      attached.destroy();
      throw err;
    }
    return attached;
  }

  /** Reads the output through the attach; whether it was read whole (else the log is read again). */
  private async readAttached(attached: Readable): Promise<boolean> {
    const { container, detach } = this;
    const splitters = this.lines.reread();
    // A holding container's init keeps the output open after the script: the read ends at its end marker.
    const ended = new AbortController();
    const watching = this.deps.holding ? this.watchEnd(ended, attached) : undefined;
    let end: PumpEnd;
    try {
      end = await pumpOutput(
        attached,
        (type, payload) => (type === 2 ? splitters.stderr : splitters.stdout).push(payload),
        this.pending,
        this.flush,
        AbortSignal.any([detach.signal, ended.signal]),
      );
    } finally {
      ended.abort();
      await watching;
    }
    if (this.scriptEnd) return true;
    // An attach ends when the container's output does, so the container stops right after (its
    // init holds the output open until then); one that broke or ended early is read again below.
    const complete = end.how === 'end' && (await stopsSoon(container, detach.signal));
    if (!complete && !detach.signal.aborted) {
      this.ctx.log.warn('attach to the container broke: reading its output from the log', {
        jobId: this.deps.jobId,
        containerId: container.id,
        how: end.how,
        error: String(end.error),
      });
    }
    return complete;
  }

  /**
   * Reads the container's whole output through the log endpoint, following it until the container
   * stops, skipping the lines already numbered (per stream).
   */
  private async readLog(): Promise<void> {
    const { container } = this;
    const detach = this.detach.signal;
    const splitters = this.lines.reread();
    const position = new LogPosition();
    // A holding container goes on running after its script: the follow read ends at its end marker.
    const ended = new AbortController();
    let output: Readable | undefined;
    const read = async (since: number) => {
      output = (await container
        .logs({ follow: true, stdout: true, stderr: true, timestamps: true, since })
        .catch((err: unknown) => {
          throw isNotFound(err) ? containerLost(container.id) : err;
        })) as unknown as Readable;
      const end = await pumpOutput(
        output,
        position.reader(splitters.stdout, splitters.stderr),
        this.pending,
        this.flush,
        AbortSignal.any([detach, ended.signal]),
      );
      if (end.how === 'error') throw end.error;
    };
    const watching = this.deps.holding ? this.watchEnd(ended, () => output) : undefined;
    try {
      await read(0);
    } finally {
      ended.abort();
      await watching;
    }
    if (detach.aborted) return;
    await this.stopping;
    // Ended, still running: the follow read went on until the output was quiet.
    if (this.scriptEnd) return;
    if ((await waitForExit(container, detach)) === undefined) return;
    // A follow read can end before Docker has written a stopped container's last messages (a
    // late stderr line, a final line without newline): read again what came after it.
    // (A follow read of a stopped container ends at the end of its log, and streams.)
    const { since, skip } = position.resumePoint();
    position.skip(skip);
    await read(since);
  }

  /**
   * Polls a holding container's end marker while its output is read; once the script has ended
   * (its output is final: the wrapper closed it and killed every other process), lets the read
   * go on until the output has been quiet for OUTPUT_QUIET_MS (what the engine still had to
   * copy), then aborts it through `stop`. A container that stops (a cancel) ends the read itself.
   */
  private async watchEnd(stop: AbortController, output: Readable | (() => Readable | undefined)): Promise<void> {
    const started = Date.now();
    let lastData = Date.now();
    let watched: Readable | undefined;
    const onData = () => (lastData = Date.now());
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    try {
      while (!stop.signal.aborted) {
        const current = typeof output === 'function' ? output() : output;
        if (current !== watched) {
          watched?.off('data', onData);
          watched = current;
          watched?.on('data', onData);
          lastData = Date.now();
        }
        if (this.stopping || !(await this.checkEnd())) {
          // Often at first (most jobs are short), then every few seconds: each look is an exec.
          await sleep(Date.now() - started < 20_000 ? END_POLL_MS : END_POLL_SLOW_MS);
          continue;
        }
        const quietFor = Date.now() - lastData;
        if (quietFor >= OUTPUT_QUIET_MS) {
          stop.abort();
          return;
        }
        await sleep(OUTPUT_QUIET_MS - quietFor);
      }
    } finally {
      watched?.off('data', onData);
    }
  }

  private async checkEnd(): Promise<boolean> {
    if (this.scriptEnd) return true;
    // A container that stopped (cancelled, killed) answers no exec: its exit is the end.
    const end = await readScriptEnd(this.container).catch(() => undefined);
    if (end) this.scriptEnd = { ...end, seenAt: new Date().toISOString() };
    return end !== undefined;
  }

  /** How the script ended, from the stopped container (a holding one: from its end marker). */
  private async outcome(exitCode: number): Promise<ScriptOutcome> {
    const finished = await inspectContainer(this.container);
    if (this.scriptEnd) {
      const { seenAt, cpuNanos, maxMemoryBytes } = this.scriptEnd;
      const usage =
        cpuNanos !== undefined && maxMemoryBytes !== undefined
          ? { cpuSeconds: cpuNanos / 1e9, maxMemoryBytes }
          : undefined;
      return {
        exitCode,
        oomKilled: false,
        startedAt: finished.State.StartedAt,
        finishedAt: seenAt,
        lastSeq: this.lastSeq,
        ...(usage && { usage }),
      };
    }
    // Removed behind the platform's back (`docker rm -f`): its exit code is the kill's, not the script's.
    if (finished.State.Status === 'removing' || finished.State.Status === 'dead')
      throw containerLost(this.container.id, 'was removed while it ran');
    // Docker stamps a very short-lived process's start after its exit at times: never report a
    // negative run time.
    const finishedAt = finished.State.FinishedAt;
    const started = this.releasedAt ?? finished.State.StartedAt;
    const startedAt = Date.parse(started) > Date.parse(finishedAt) ? finishedAt : started;
    return { exitCode, oomKilled: finished.State.OOMKilled, startedAt, finishedAt, lastSeq: this.lastSeq };
  }

  /** Lines waiting to be stored. */
  private readonly pending = () => this.lines.pending;

  /** Stores the lines numbered so far, after the write before; once done, they are a checkpoint. */
  private readonly flush = (): Promise<void> => {
    this.storing = this.storing.then(async () => {
      const position = this.lines.position();
      const batch = this.lines.take();
      if (batch.length > 0) {
        await this.deps.logStore.append(this.deps.jobId, batch);
        this.lastSeq = batch[batch.length - 1]!.seq;
      }
      this.checkpoint = position;
    });
    return this.storing;
  };

  // Runs outside the activity's async context: use ctx, never the module-level helpers.
  private readonly onCancel = () => {
    const { ctx, container } = this;
    // Only the workflow's cancel (a user's, or the job's deadline) stops the script. A worker
    // shutting down, a server that gave up on this attempt (timed out, or no longer knows it),
    // a pause or a reset let go of the container, running: the next attempt reattaches to it.
    // A stop the platform caused is never the script's exit code.
    if (!ctx.cancellationDetails?.cancelRequested) {
      this.detach.abort();
      return;
    }
    ctx.log.info('stopping container', {
      jobId: this.deps.jobId,
      containerId: container.id,
      graceSeconds: this.deps.cancelGraceSeconds,
    });
    this.stopping = stopContainer(container, this.deps.cancelGraceSeconds);
    // Observed here so a failed stop never becomes an unhandled rejection; awaited below.
    this.stopping.catch(() => undefined);
  };

  /**
   * Lets go of a container that goes on running: what was read is stored, the next attempt
   * reattaches from the checkpoint.
   */
  private async letGo(): Promise<never> {
    await this.flush();
    this.beats.beat();
    throw this.ctx.cancellationSignal.reason;
  }
}

/** How often a holding container's end marker is looked for while its output is read, ms. */
const END_POLL_MS = 500;
const END_POLL_SLOW_MS = 2000;
/** How long a holding container's output must be quiet after its script's end before it counts as read whole, ms. */
const OUTPUT_QUIET_MS = 300;

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
