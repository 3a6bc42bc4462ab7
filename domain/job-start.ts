import { TypedSearchAttributes } from '@temporalio/common';
import type { WorkflowStartOptions } from '@temporalio/client';
import type { Config } from './config.js';
import { labelsAttribute, type JobInput } from './job-spec.js';
import { initialMemo, LABELS_KEY, stateAttribute, type JobMemo } from './job-state.js';
import type { runJob } from '../workflows/run-job.js';

/**
 * What every start of a job's workflow carries, whoever starts it (a submit, a schedule's
 * action, a pipeline step): its input, the task queue, the initial memo its state is derived
 * from and the search attributes it is found by. One definition, so a job looks the same
 * however it was started. Pure (no Node code): the pipeline workflow starts its steps with it too.
 */
export function jobStartOptions(
  input: JobInput,
  config: Pick<Config, 'HODEI_TASK_QUEUE'>,
  extraMemo: Record<string, unknown> = {},
): Pick<WorkflowStartOptions<typeof runJob>, 'taskQueue' | 'args' | 'memo' | 'typedSearchAttributes'> & {
  memo: JobMemo & Record<string, unknown>;
} {
  const memo = initialMemo(input);
  return {
    taskQueue: config.HODEI_TASK_QUEUE,
    args: [input],
    memo: { ...memo, ...extraMemo },
    typedSearchAttributes: new TypedSearchAttributes([
      stateAttribute(memo.state),
      { key: LABELS_KEY, value: labelsAttribute(input.labels) },
    ]),
  };
}
