/**
 * The pipeline state machine, next to the job's (job-state.ts): the vocabulary of pipelines and of
 * their steps, the memo a pipeline's workflow keeps them in (read by the API through describe, no
 * worker needed), how Temporal's workflow status maps to a pipeline state, and the critical path.
 * Type-only imports, so it loads in the workflow sandbox and in the web page.
 */
import type { WorkflowFacts } from './job-state.js';

/** The one vocabulary of pipeline states; the `HodeiState` search attribute holds them too. */
export const PIPELINE_STATES = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;
export type PipelineState = (typeof PIPELINE_STATES)[number];

/** A step's states: a pipeline's, plus SKIPPED (never ran: a need failed, or the pipeline was stopped first). */
export const STEP_STATES = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'SKIPPED'] as const;
export type StepState = (typeof STEP_STATES)[number];

export const PIPELINE_TERMINAL_STATES: readonly PipelineState[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];
export const STEP_TERMINAL_STATES: readonly StepState[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'SKIPPED'];

/** Failure type of a pipeline workflow that ends because a step failed. */
export const FAILURE_PIPELINE_FAILED = 'PipelineFailed';

/** The job id of a pipeline's step: derived, so a replay or a retried start finds the same job. */
export function stepJobId(pipelineId: string, step: string): string {
  return `${pipelineId}-${step}`;
}

/** A step as the pipeline's memo keeps it from the start: what it is. */
export interface StepDefinition {
  name: string;
  needs: string[];
  allowFailure: boolean;
  jobId: string;
}

/** A step's progress, under the memo key `stepMemoKey(name)`: one small upsert per change. */
export interface StepMemo {
  state: StepState;
  startedAt?: string;
  finishedAt?: string;
  reason?: string;
}

/** Facts about a pipeline kept in its workflow's memo. */
export interface PipelineMemo {
  /** Tells a pipeline's memo from a job's. */
  kind: 'pipeline';
  name: string;
  labels: Record<string, string>;
  failFast: boolean;
  state: PipelineState;
  steps: StepDefinition[];
  startedAt?: string;
  finishedAt?: string;
  reason?: string;
}

/** Memo key of a step's progress. */
export const stepMemoKey = (step: string) => `step:${step}`;

/** The pipeline state agreed with Temporal's workflow status (as job-state's `deriveState`). */
export function derivePipelineState(
  workflow: Pick<WorkflowFacts, 'status'>,
  memo: Partial<PipelineMemo>,
): { state: PipelineState; reason?: string } {
  switch (workflow.status) {
    case 'COMPLETED':
      return { state: 'SUCCEEDED' };
    case 'FAILED':
      return { state: 'FAILED' };
    case 'CANCELLED':
      return { state: 'CANCELLED' };
    case 'TERMINATED':
      return { state: 'FAILED', reason: 'workflow terminated' };
    case 'TIMED_OUT':
      return { state: 'FAILED', reason: 'workflow execution timeout' };
    default:
      return { state: memo.state === 'RUNNING' ? 'RUNNING' : 'QUEUED' };
  }
}

/** How each pipeline state reads in Temporal visibility (with `WorkflowType = 'runPipeline'`). */
export const PIPELINE_STATE_QUERIES: Record<PipelineState, string> = {
  QUEUED: "ExecutionStatus = 'Running' AND HodeiState = 'QUEUED'",
  RUNNING: "ExecutionStatus = 'Running' AND HodeiState = 'RUNNING'",
  SUCCEEDED: "ExecutionStatus = 'Completed'",
  FAILED: "ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut')",
  CANCELLED: "ExecutionStatus = 'Canceled'",
};

/** What the critical path is computed from: each step's needs and, once it ran, its duration. */
export interface TimedStep {
  name: string;
  needs: readonly string[];
  durationMs?: number;
}

/**
 * The critical path: the chain of needs whose step durations add up to the most, i.e. the
 * shortest the pipeline could have taken with unlimited capacity. Steps that never ran count 0.
 */
export function criticalPath(steps: readonly TimedStep[]): { steps: string[]; durationMs: number } {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const best = new Map<string, { durationMs: number; via?: string }>();
  const finish = (name: string): number => {
    const known = best.get(name);
    if (known) return known.durationMs;
    const step = byName.get(name)!;
    let via: string | undefined;
    let before = 0;
    for (const need of step.needs) {
      const at = finish(need);
      if (via === undefined || at > before) [via, before] = [need, at];
    }
    const total = before + (step.durationMs ?? 0);
    best.set(name, { durationMs: total, via });
    return total;
  };
  let end: string | undefined;
  for (const step of steps) {
    const at = finish(step.name);
    if (end === undefined || at > finish(end)) end = step.name;
  }
  const path: string[] = [];
  for (let at = end; at !== undefined; at = best.get(at)!.via) path.unshift(at);
  return { steps: path, durationMs: end === undefined ? 0 : finish(end) };
}
