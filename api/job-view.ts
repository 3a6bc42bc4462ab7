import { z } from '@hono/zod-openapi';
import type { Client, WorkflowExecutionDescription } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { optionalTsToDate } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';

const { temporal } = proto;
import { deriveState, JOB_STATES, type JobMemo, type WorkflowFacts } from '../domain/job-state.js';
import { RUN_JOB_WORKFLOW } from '../domain/workflow-type.js';

/** The `:id` path parameter of every job route. */
export const JobIdParams = z.object({ id: z.string().min(1).max(200) });

/** A job as the API shows it. */
export const JobViewSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    state: z.enum(JOB_STATES),
    image: z.string().optional(),
    labels: z.record(z.string(), z.string()),
    exitCode: z.number().int().optional(),
    reason: z.string().optional(),
    createdAt: z.string(),
    startedAt: z.string().optional(),
    finishedAt: z.string().optional(),
    host: z.string().optional(),
    attempt: z.number().int().optional(),
    cleanupPending: z.boolean().optional(),
    usage: z
      .object({
        cpuSeconds: z.number().describe("CPU time of all the container's processes"),
        maxMemoryBytes: z.number().int().describe('peak memory of the container'),
        blockReadBytes: z.number().int().optional(),
        blockWriteBytes: z.number().int().optional(),
      })
      .optional()
      .describe("What the finished attempt used (its container's cgroup)"),
    artifacts: z
      .object({
        count: z.number().int(),
        bytes: z.number().int(),
        truncated: z.boolean(),
        skipped: z.string().optional().describe('why nothing was collected'),
      })
      .optional()
      .describe("What the collection of the job's artifacts kept (GET /jobs/{id}/artifacts lists them)"),
    artifactsTruncated: z.boolean().optional().describe('artifacts were left out (over maxBytes, or bad names)'),
    workflow: z.object({ workflowId: z.string(), runId: z.string(), status: z.string() }),
  })
  .openapi('JobView');
export type JobView = z.infer<typeof JobViewSchema>;

const PendingActivityState = temporal.api.enums.v1.PendingActivityState;
const EventType = temporal.api.enums.v1.EventType;

export interface DescribeOptions {
  /**
   * Also tell when a running job's script started (`startedAt`), which may read the workflow's
   * history. Default: true; off where only the state matters.
   */
  runStart?: boolean;
}

/**
 * Reads a job from Temporal's describe (status, memo, pending activities): no workflow query, so
 * it is fast and works while no worker runs. Undefined for an unknown id.
 */
export async function describeJob(
  client: Client,
  id: string,
  options: DescribeOptions = {},
): Promise<JobView | undefined> {
  let description: WorkflowExecutionDescription;
  try {
    description = await client.workflow.getHandle(id).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
  if (description.type !== RUN_JOB_WORKFLOW) return undefined;
  const job = toJobView(description);
  if (options.runStart !== false && !job.startedAt && (job.state === 'RUNNING' || job.state === 'CANCELLING')) {
    job.startedAt = (await runStartedAt(client, description))?.toISOString();
  }
  return job;
}

/**
 * When the running attempt's script started. The workflow records the container's start only
 * once the script has ended; until then it is the run activity's start: its first attempt's, in
 * the describe. A run whose worker died was retried, and the retry reattached to the container
 * the first attempt had started: the describe then holds only the retry's start, so the time comes
 * from the history, where the run activity was scheduled (just before its first attempt started).
 */
async function runStartedAt(client: Client, d: WorkflowExecutionDescription): Promise<Date | undefined> {
  const run = d.raw.pendingActivities?.find((a) => a.activityType?.name === 'runScript');
  if (!run) return undefined;
  if ((run.attempt ?? 1) <= 1) {
    return run.state === PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
      ? optionalTsToDate(run.lastStartedTime)
      : undefined;
  }
  let nextPageToken: Uint8Array | undefined;
  // A job's history is a few dozen events; the bound only guards against a runaway one.
  for (let page = 0; page < 20; page += 1) {
    const history = await client.workflowService.getWorkflowExecutionHistory({
      namespace: client.options.namespace,
      execution: { workflowId: d.workflowId, runId: d.runId },
      nextPageToken,
    });
    const scheduled = history.history?.events?.find(
      (e) =>
        e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
        e.activityTaskScheduledEventAttributes?.activityId === run.activityId,
    );
    if (scheduled) return optionalTsToDate(scheduled.eventTime);
    if (!history.nextPageToken?.length) return undefined;
    nextPageToken = history.nextPageToken;
  }
  return undefined;
}

export function toJobView(d: WorkflowExecutionDescription): JobView {
  const memo = (d.memo ?? {}) as Partial<JobMemo>;
  const { state, reason } = deriveState(workflowFacts(d), memo);
  return {
    id: d.workflowId,
    name: memo.name ?? d.workflowId,
    state,
    image: memo.image,
    labels: memo.labels ?? {},
    exitCode: memo.exitCode,
    reason: reason ?? memo.reason,
    createdAt: d.startTime.toISOString(),
    startedAt: isoOrUndefined(memo.startedAt),
    finishedAt: isoOrUndefined(memo.finishedAt) ?? d.closeTime?.toISOString(),
    host: memo.host,
    attempt: memo.attempt ?? (memo.containerId ? 1 : undefined),
    cleanupPending: memo.cleanupPending,
    usage: memo.usage,
    artifacts: memo.artifacts,
    artifactsTruncated: memo.artifacts ? memo.artifacts.truncated : undefined,
    workflow: { workflowId: d.workflowId, runId: d.runId, status: d.status.name },
  };
}

/** What the job state is derived from, out of Temporal's describe. */
function workflowFacts(d: WorkflowExecutionDescription): WorkflowFacts {
  const provision = d.raw.pendingActivities?.find((a) => a.activityType?.name === 'provisionContainer');
  return {
    status: d.status.name,
    cancelRequested: d.raw.workflowExtendedInfo?.cancelRequested ?? false,
    provisioning: provision && {
      started: provision.state === PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
      attempt: provision.attempt,
      lastFailureMessage: provision.lastFailure?.message,
    },
  };
}

function isoOrUndefined(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}
