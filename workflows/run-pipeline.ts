import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  ChildWorkflowCancellationType,
  ChildWorkflowFailure,
  condition,
  isCancellation,
  ParentClosePolicy,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { jobStartOptions } from '../domain/job-start.js';
import { stateAttribute } from '../domain/job-state.js';
import type { PipelineInput, PipelineStepInput } from '../domain/pipeline-spec.js';
import {
  FAILURE_PIPELINE_FAILED,
  stepJobId,
  stepMemoKey,
  type PipelineState,
  type StepMemo,
  type StepState,
} from '../domain/pipeline-state.js';
import { RUN_JOB_WORKFLOW } from '../domain/workflow-type.js';
import type { runJob } from './run-job.js';

/** What a finished pipeline returns: each step's final state. */
export interface PipelineResult {
  steps: Array<{ name: string; state: StepState }>;
}

function setPipelineState(state: PipelineState, facts: { startedAt?: string; finishedAt?: string; reason?: string }) {
  upsertMemo({ state, ...facts });
  upsertSearchAttributes([stateAttribute(state)]);
}

const now = () => new Date().toISOString();

/**
 * One pipeline: each step is a child `runJob` workflow (an ordinary job, id derived from the
 * pipeline's id and the step's name, so a replay or a retried task never starts a step twice),
 * started as soon as every step it needs has succeeded (or failed with `allowFailure`);
 * independent steps run in parallel. A failed step fails the pipeline and skips its dependants;
 * with `failFast` it also cancels the running steps. Cancelling the pipeline cancels the running
 * steps' jobs (each stops as a job cancel does), skips the pending ones, and only then ends
 * CANCELLED. Cancelling one step's job alone fails that step.
 */
export async function runPipeline(input: PipelineInput): Promise<PipelineResult> {
  const { workflowId: pipelineId, taskQueue } = workflowInfo();
  const root = CancellationScope.current();
  const steps = new Map(input.steps.map((s) => [s.name, s]));
  const states = new Map<string, StepState>(input.steps.map((s) => [s.name, 'QUEUED']));
  const scopes = new Map<string, CancellationScope>();
  const running = new Map<string, Promise<void>>();
  let failedStep: { name: string; reason: string } | undefined;
  let changed = false;
  let cancelled = false;
  root.cancelRequested.catch(() => {
    cancelled = true;
    changed = true;
  });

  const record = (name: string, state: StepState, facts: Omit<StepMemo, 'state'> = {}) => {
    states.set(name, state);
    upsertMemo({ [stepMemoKey(name)]: { state, ...facts } satisfies StepMemo });
    changed = true;
  };

  const startedAt = now();
  setPipelineState('RUNNING', { startedAt });

  async function runStep(step: PipelineStepInput): Promise<void> {
    // A scope of its own, under the workflow's: a pipeline cancel reaches it, and failFast can
    // cancel it alone.
    const scope = new CancellationScope({ cancellable: true, parent: root });
    scopes.set(step.name, scope);
    const stepStartedAt = now();
    record(step.name, 'RUNNING', { startedAt: stepStartedAt });
    let started = false;
    try {
      await scope.run(async () => {
        const child = await startChild<typeof runJob>(RUN_JOB_WORKFLOW, {
          ...jobStartOptions(step.job, { HODEI_TASK_QUEUE: taskQueue }),
          workflowId: stepJobId(pipelineId, step.name),
          // The pipeline waits until a cancelled step's container is gone.
          cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
          // Should the pipeline end without cancelling its steps (terminated), they are cancelled.
          parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
        });
        started = true;
        await child.result();
      });
      record(step.name, 'SUCCEEDED', { startedAt: stepStartedAt, finishedAt: now() });
    } catch (err) {
      const finishedAt = now();
      if (scope.consideredCancelled && isCancellation(err)) {
        // Stopped by the pipeline (its cancel, or failFast): never started means it never ran.
        if (started) record(step.name, 'CANCELLED', { startedAt: stepStartedAt, finishedAt, reason: 'cancelled' });
        else record(step.name, 'SKIPPED', { reason: 'the pipeline was stopped before the step started' });
      } else {
        const reason = stepFailureReason(err);
        record(step.name, 'FAILED', { startedAt: stepStartedAt, finishedAt, reason });
        if (!step.allowFailure) failedStep ??= { name: step.name, reason };
      }
    } finally {
      running.delete(step.name);
    }
  }

  for (;;) {
    const stopping = cancelled || root.consideredCancelled || (input.failFast && failedStep !== undefined);
    if (stopping) {
      for (const name of running.keys()) scopes.get(name)!.cancel();
    }
    // Skipping one step can settle another: go round until nothing moves.
    for (let moved = true; moved;) {
      moved = false;
      for (const step of input.steps) {
        if (states.get(step.name) !== 'QUEUED' || running.has(step.name)) continue;
        const needs = step.needs.map((n) => ({ step: steps.get(n)!, state: states.get(n)! }));
        const blocked = needs.find(
          (n) => n.state === 'SKIPPED' || n.state === 'CANCELLED' || (n.state === 'FAILED' && !n.step.allowFailure),
        );
        if (stopping || blocked) {
          const reason = blocked
            ? `needs ${blocked.step.name}, which ended ${blocked.state}`
            : cancelled || root.consideredCancelled
              ? 'the pipeline was cancelled'
              : `step ${failedStep?.name} failed (failFast)`;
          record(step.name, 'SKIPPED', { reason });
          moved = true;
        } else if (needs.every((n) => n.state === 'SUCCEEDED' || n.state === 'FAILED')) {
          running.set(step.name, runStep(step));
        }
      }
    }
    if (running.size === 0) break;
    changed = false;
    // Not cancellable: a cancel of the pipeline wakes it (above), then it waits for its steps.
    await CancellationScope.nonCancellable(() => condition(() => changed));
  }

  const finishedAt = now();
  if (cancelled || root.consideredCancelled) {
    setPipelineState('CANCELLED', { finishedAt, reason: 'cancelled' });
    throw new CancelledFailure('pipeline cancelled');
  }
  if (failedStep) {
    const reason = `step ${failedStep.name} failed: ${failedStep.reason}`;
    setPipelineState('FAILED', { finishedAt, reason });
    throw ApplicationFailure.create({ type: FAILURE_PIPELINE_FAILED, message: reason, nonRetryable: true });
  }
  setPipelineState('SUCCEEDED', { finishedAt });
  return { steps: input.steps.map((s) => ({ name: s.name, state: states.get(s.name)! })) };
}

/** Why a step's job failed: its own failure's message (exit code, timeout, cancelled alone…). */
function stepFailureReason(err: unknown): string {
  if (err instanceof ChildWorkflowFailure) {
    if (isCancellation(err)) return 'its job was cancelled';
    if (err.cause instanceof Error) return err.cause.message;
  }
  return err instanceof Error ? err.message : String(err);
}
