import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  isCancellation,
  log,
  proxyActivities,
  sleep,
  TimeoutFailure,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import type { ProvisionedContainer, ScriptOutcome } from '../activities/types.js';
import type { JobResult } from '../domain/job-result.js';
import type { ArtifactsInput } from '../domain/artifacts.js';
import type { JobInput } from '../domain/job-spec.js';
import { HOST_KEY, memoForState, stateAttribute, type JobMemo, type JobState } from '../domain/job-state.js';
import { concurrencyWaitReason } from '../domain/concurrency.js';
import { withConcurrencyPermit } from './concurrency-key.js';
import {
  FAILURE_CONTAINER_LOST,
  FAILURE_HOST_LOST,
  FAILURE_JOB_TIMED_OUT,
  FAILURE_SCRIPT_FAILED,
} from '../domain/job-failures.js';

// Runs on the shared queue: whichever host has a free slot takes the job.
const { provisionContainer } = proxyActivities<Activities>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: '10 seconds',
  // A container created by a provision attempt that is being cancelled must be known before the
  // workflow moves on, or it could not be cleaned up.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', backoffCoefficient: 2 },
});

/** Host-bound activities: they must run on the worker whose Docker engine holds the container. */
function hostActivities(container: ProvisionedContainer, input: JobInput) {
  // A host whose worker does not pick up its task within this time is lost (worker and engine
  // gone): the job moves on instead of waiting forever on a queue nobody serves.
  const scheduleToStartTimeout = `${input.hostLossSeconds} seconds`;
  const run = proxyActivities<Activities>({
    taskQueue: container.hostTaskQueue,
    scheduleToStartTimeout,
    // Backstop only: the job's own timeout is the workflow timer below.
    startToCloseTimeout: `${input.timeoutSeconds + input.cancelGraceSeconds + 300} seconds`,
    // Short, so a dead worker is noticed quickly and the retry reattaches to the container.
    heartbeatTimeout: '5 seconds',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 20 },
  });
  const cleanup = proxyActivities<Activities>({
    taskQueue: container.hostTaskQueue,
    scheduleToStartTimeout,
    startToCloseTimeout: '1 minute',
    // The cleanup deadline: retries with backoff until then.
    scheduleToCloseTimeout: `${input.cleanupDeadlineSeconds} seconds`,
    retry: { initialInterval: '1 second', maximumInterval: '20 seconds' },
  });
  const collect = proxyActivities<Activities>({
    taskQueue: container.hostTaskQueue,
    scheduleToStartTimeout,
    // Bounded by the job's maxBytes; a worker that dies mid-way is noticed by the heartbeat.
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 10 },
  });
  return {
    runScript: run.runScript,
    removeContainer: cleanup.removeContainer,
    collectArtifacts: collect.collectArtifacts,
    stopHeldScript: run.stopHeldScript,
    // Answers at once (the run stops its container); within the cleanup's deadline, as a cleanup.
    stopRun: cleanup.stopRun,
  };
}

/** Whether an attempt that ended so is collected: a non-zero exit (or a timeout) is a failure. */
function collectsOn(when: ArtifactsInput['when'], succeeded: boolean): boolean {
  return when === 'always' || (when === 'on_success') === succeeded;
}

/**
 * Collects a finished attempt's artifacts per the job's `when`, before its container goes. A
 * collection that fails leaves the job's own outcome as it is: the memo says why.
 */
async function collectAttempt(
  jobId: string,
  input: JobInput,
  attempt: number,
  container: ProvisionedContainer,
  outcome: ScriptOutcome,
  collectArtifacts: Activities['collectArtifacts'],
): Promise<void> {
  const artifacts = input.artifacts;
  if (!artifacts || !collectsOn(artifacts.when, outcome.exitCode === 0)) return;
  try {
    const summary = await collectArtifacts({
      jobId,
      containerId: container.containerId,
      attempt,
      artifacts,
      holdSkipped: container.holding ? undefined : (container.holdSkipped ?? 'the container did not hold'),
    });
    upsertMemo({ artifacts: summary });
  } catch (err) {
    if (isCancellation(err)) throw err;
    log.warn('artifacts not collected', { error: String(err) });
    upsertMemo({ artifacts: { count: 0, bytes: 0, truncated: false, skipped: failureReason(err) } });
  }
}

function setState(state: JobState, facts: Partial<JobMemo> = {}, host?: string): void {
  upsertMemo(memoForState(state, facts));
  upsertSearchAttributes(
    host === undefined ? [stateAttribute(state)] : [stateAttribute(state), { key: HOST_KEY, value: host }],
  );
}

/** The run failed because its host went away (or its container with it), not the script. */
function isHostLoss(err: unknown): boolean {
  if (!(err instanceof ActivityFailure)) return false;
  const cause = err.cause;
  if (cause instanceof ApplicationFailure) return cause.type === FAILURE_CONTAINER_LOST;
  // Not picked up by the host's worker in time, or its worker kept dying mid-run.
  return cause instanceof TimeoutFailure && cause.timeoutType !== TimeoutType.START_TO_CLOSE;
}

interface AttemptResult {
  outcome: ScriptOutcome;
  container: ProvisionedContainer;
}

/**
 * One job: provision its container, run the script with a timeout racing it, and always remove
 * the container. Completes for exit code 0; fails with `ScriptFailed` for another exit code and
 * `JobTimedOut` at the deadline; is cancelled (after its container is gone) when cancelled.
 * A non-zero exit is run again up to `retries` times; a lost host, up to `infraRetries` times,
 * on any host: each attempt is a fresh container.
 */
export async function runJob(input: JobInput): Promise<JobResult> {
  const jobId = workflowInfo().workflowId;
  CancellationScope.current().cancelRequested.catch(() => setState('CANCELLING'));

  try {
    // Jobs without a key take exactly the path they always took (no new commands), so their
    // recorded histories replay unchanged.
    if (!input.concurrency) return await runAttempts(jobId, input);
    const { key, limit } = input.concurrency;
    return await withConcurrencyPermit(
      input.concurrency,
      () => setState('QUEUED', { reason: concurrencyWaitReason(key, limit) }),
      () => upsertMemo({ reason: undefined }),
      () => runAttempts(jobId, input),
    );
  } catch (err) {
    if (isCancellation(err)) {
      setState('CANCELLED', { finishedAt: new Date().toISOString(), reason: 'cancelled' });
    } else if (!(err instanceof ApplicationFailure && err.type === FAILURE_SCRIPT_FAILED)) {
      const timedOut = err instanceof ApplicationFailure && err.type === FAILURE_JOB_TIMED_OUT;
      setState(timedOut ? 'TIMED_OUT' : 'FAILED', {
        finishedAt: new Date().toISOString(),
        reason: timedOut ? `timed out after ${input.timeoutSeconds}s` : failureReason(err),
      });
    }
    throw err;
  }
}

/** The job's attempts: again after a non-zero exit (`retries`) or a lost host (`infraRetries`). */
async function runAttempts(jobId: string, input: JobInput): Promise<JobResult> {
  let scriptRetries = 0;
  let hostLosses = 0;
  for (let attempt = 1; ; attempt += 1) {
    let result: AttemptResult;
    try {
      result = await runAttempt(jobId, input, attempt);
    } catch (err) {
      if (!isHostLoss(err)) throw err;
      log.warn('host lost', { attempt, error: String(err) });
      if (hostLosses >= input.infraRetries) {
        throw ApplicationFailure.create({
          type: FAILURE_HOST_LOST,
          message: 'host lost',
          nonRetryable: true,
          cause: err as Error,
        });
      }
      hostLosses += 1;
      setState('QUEUED', { reason: `host lost during attempt ${attempt}; running again` });
      continue;
    }
    if (result.outcome.exitCode !== 0 && scriptRetries < input.retries) {
      scriptRetries += 1;
      setState('QUEUED', { reason: `attempt ${attempt} exited ${result.outcome.exitCode}; running again` });
      continue;
    }
    return finish(result.outcome, result.container);
  }
}

/**
 * Provisions a fresh container, runs the script in it, and removes it (unless its host is lost):
 * the run activity removes it when the script ends on its own, a cleanup activity otherwise.
 */
async function runAttempt(jobId: string, input: JobInput, attempt: number): Promise<AttemptResult> {
  const container = await provisionContainer({
    jobId,
    attempt,
    image: input.image,
    script: input.script,
    // Only jobs that declare artifacts: the others' provisioning input stays as it was.
    ...(input.artifacts && { holdForArtifacts: true }),
    // Only pipeline steps with needs (their artifacts under /work/in/<step>/); activity input is
    // not part of Temporal's determinism check, so recorded histories replay unchanged.
    ...(input.inputs && { inputs: input.inputs }),
    env: input.env,
    // Absent for jobs submitted before secrets existed: then the command is what it was, so their
    // histories replay unchanged (and activity input is not part of Temporal's determinism check).
    secrets: input.secrets,
    resources: input.resources,
  });
  // Jobs started before `hostWithState` upsert their host alone here, as their histories recorded.
  if (!input.hostWithState) upsertSearchAttributes([{ key: HOST_KEY, value: container.host }]);
  const { runScript, removeContainer, collectArtifacts, stopHeldScript, stopRun } = hostActivities(container, input);
  // A job that declares artifacts keeps its container after the script for their collection.
  const holding = input.artifacts !== undefined && container.holding === true;

  let hostLost = false;
  let removed = false;
  try {
    // Cancelled while the container was being created: it is removed below, never started.
    if (CancellationScope.current().consideredCancelled) {
      if (input.hostWithState) upsertSearchAttributes([{ key: HOST_KEY, value: container.host }]);
      await CancellationScope.current().cancelRequested;
    }
    setState(
      'RUNNING',
      { host: container.host, containerId: container.containerId, attempt, reason: undefined },
      input.hostWithState ? container.host : undefined,
    );
    const outcome = await runWithDeadline(
      input,
      () =>
        runScript({
          jobId,
          containerId: container.containerId,
          cancelGraceSeconds: input.cancelGraceSeconds,
          attempt,
          removeWhenDone: input.artifacts === undefined,
          ...(holding && { holding: true }),
        }),
      // A holding container's script is stopped at the deadline, the container kept for collection.
      holding
        ? () => stopHeldScript({ containerId: container.containerId, cancelGraceSeconds: input.cancelGraceSeconds })
        : undefined,
      // Jobs started before `hostStops` hear a cancel with the run's heartbeat alone, as recorded.
      input.hostStops ? () => stopRun({ containerId: container.containerId }) : undefined,
    );
    // Its host stopped the run for the cancel: the attempt is cancelled, whatever the stop's exit.
    if (outcome.cancelled) throw new CancelledFailure('cancelled');
    // Jobs without artifacts schedule nothing here: their histories replay unchanged.
    await collectAttempt(jobId, input, attempt, container, outcome, collectArtifacts);
    if (outcome.timedOut) throw jobTimedOut(input);
    // A script that ended on its own has its container removed by the run activity. No patch
    // marker needed: the branch follows the recorded result, so a history from before (no
    // `removed`) replays to the cleanup activity it did schedule.
    removed = outcome.removed === true;
    return { outcome, container };
  } catch (err) {
    hostLost = isHostLoss(err);
    throw err;
  } finally {
    if (hostLost) {
      // Its worker is gone: the reaper removes the container if the host ever comes back.
      upsertMemo({ cleanupPending: true });
    } else if (!removed) {
      // Whatever happened, and even when cancelled: the attempt only ends once its container is gone.
      await CancellationScope.nonCancellable(async () => {
        try {
          await removeContainer({ containerId: container.containerId });
        } catch (err) {
          // Docker stayed unreachable past the cleanup deadline: end the job anyway; the reaper
          // removes the container once the engine answers again.
          log.warn('container not removed, left to the reaper', { error: String(err) });
          upsertMemo({ cleanupPending: true });
        }
      });
    }
  }
}

function jobTimedOut(input: JobInput): ApplicationFailure {
  return ApplicationFailure.create({
    type: FAILURE_JOB_TIMED_OUT,
    message: `job timed out after ${input.timeoutSeconds}s`,
    nonRetryable: true,
  });
}

/**
 * Runs the script, cancelling it (the same stop as a user's cancel) when the job's time is up.
 * With `stopHeld` (a holding container) the deadline stops the script alone; the run then ends
 * with the script's exit and `timedOut`, so the caller can collect before failing the job.
 */
async function runWithDeadline(
  input: JobInput,
  run: () => Promise<ScriptOutcome>,
  stopHeld?: () => Promise<void>,
  stopOnHost?: () => Promise<void>,
): Promise<ScriptOutcome & { timedOut?: true }> {
  const runScope = new CancellationScope();
  const timerScope = new CancellationScope();
  const running = runScope.run(run);
  let settled = false;
  running.then(
    () => (settled = true),
    () => (settled = true),
  );
  // A cancel of the run (the job's, or its deadline's below) is also told to its host, which
  // stops the container now; the run activity's own cancel would reach it with its next heartbeat.
  if (stopOnHost) {
    runScope.cancelRequested.catch(() => {
      if (settled) return;
      CancellationScope.nonCancellable(stopOnHost).catch((err: unknown) =>
        log.warn('the host was not told to stop the run: its heartbeat brings the cancel', { error: String(err) }),
      );
    });
  }
  const deadline = timerScope.run(() => sleep(input.timeoutSeconds * 1000));
  const first = await Promise.race([
    running.then(
      () => 'done' as const,
      () => 'done' as const,
    ),
    deadline.then(
      () => 'deadline' as const,
      () => 'done' as const,
    ),
  ]);
  if (first === 'done') {
    timerScope.cancel();
    return running;
  }
  log.info('job timed out, stopping it', { timeoutSeconds: input.timeoutSeconds });
  if (stopHeld) {
    try {
      await stopHeld();
      return { ...(await running), timedOut: true };
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.warn('could not stop the script alone: stopping its container', { error: String(err) });
    }
  }
  runScope.cancel();
  await running.catch(() => undefined);
  throw jobTimedOut(input);
}

function finish(outcome: ScriptOutcome, container: ProvisionedContainer): JobResult {
  const facts: Partial<JobMemo> = {
    exitCode: outcome.exitCode,
    startedAt: outcome.startedAt,
    finishedAt: outcome.finishedAt,
    oomKilled: outcome.oomKilled,
    ...(outcome.usage && { usage: outcome.usage }),
  };
  if (outcome.exitCode !== 0) {
    const reason = outcome.oomKilled ? 'OOMKilled' : `exit code ${outcome.exitCode}`;
    setState('FAILED', { ...facts, reason });
    throw ApplicationFailure.create({
      type: FAILURE_SCRIPT_FAILED,
      message: `script failed: ${reason}`,
      nonRetryable: true,
      details: [{ exitCode: outcome.exitCode, oomKilled: outcome.oomKilled }],
    });
  }
  setState('SUCCEEDED', { ...facts, reason: undefined });
  return {
    exitCode: 0,
    containerId: container.containerId,
    host: container.host,
    startedAt: outcome.startedAt,
    finishedAt: outcome.finishedAt,
    durationMs: Date.parse(outcome.finishedAt) - Date.parse(outcome.startedAt),
  };
}

function failureReason(err: unknown): string {
  let cause: unknown = err;
  // An ActivityFailure wraps the activity's own error: that one says what happened.
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  return cause instanceof Error ? cause.message : String(err);
}
