import { TypedSearchAttributes } from '@temporalio/common';
import type { WorkflowStartOptions } from '@temporalio/client';
import type { Config } from './config.js';
import type { JobInput } from './job-spec.js';
import {
  DEFAULT_PRIORITY,
  initialMemo,
  labelsAttribute,
  LABELS_KEY,
  PRIORITY_KEY,
  stateAttribute,
  type JobMemo,
} from './job-state.js';
import type { runJob } from '../workflows/run-job.js';

/**
 * What every start of a job's workflow carries, whoever starts it (a submit, a schedule's
 * action, a pipeline step): its input, the task queue, the initial memo its state is derived
 * from, the search attributes it is found by, and who runs first: the job's Temporal Priority
 * (priority key, fairness key and weight; its activities, provisioning among them, inherit it, so
 * Temporal's matcher hands a free slot to the most urgent queued job) and, for a `startAt` ahead,
 * Temporal's start delay (the workflow's first task waits in Temporal: nothing runs, nothing is
 * held; a cancel ends it at once). One definition, so a job looks the same however it was started.
 * Pure (no Node code): the pipeline workflow starts its steps with it too.
 */
export function jobStartOptions(
  input: JobInput,
  config: Pick<Config, 'HODEI_TASK_QUEUE'>,
  extraMemo: Record<string, unknown> = {},
  now: number = Date.now(),
): Pick<
  WorkflowStartOptions<typeof runJob>,
  'taskQueue' | 'args' | 'memo' | 'typedSearchAttributes' | 'priority' | 'startDelay'
> & {
  memo: JobMemo & Record<string, unknown>;
} {
  const memo: JobMemo = {
    ...initialMemo(input),
    ...(input.startAt ? { startAt: input.startAt } : {}),
    ...(input.concurrency && { concurrency: input.concurrency }),
  };
  const priority = input.priority ?? DEFAULT_PRIORITY;
  const delayMs = input.startAt ? Date.parse(input.startAt) - now : 0;
  return {
    taskQueue: config.HODEI_TASK_QUEUE,
    args: [{ ...input, hostWithState: true, hostStops: true }],
    memo: { ...memo, ...extraMemo },
    typedSearchAttributes: new TypedSearchAttributes([
      stateAttribute(memo.state),
      { key: LABELS_KEY, value: labelsAttribute(input.labels) },
      { key: PRIORITY_KEY, value: priority },
    ]),
    priority: {
      priorityKey: priority,
      ...(input.fairnessKey !== undefined ? { fairnessKey: input.fairnessKey } : {}),
      ...(input.fairnessWeight !== undefined ? { fairnessWeight: input.fairnessWeight } : {}),
    },
    // A past time starts at once.
    ...(delayMs > 0 ? { startDelay: delayMs } : {}),
  };
}
