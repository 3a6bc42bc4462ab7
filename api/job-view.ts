import { z } from '@hono/zod-openapi';
import type { Client, WorkflowExecutionDescription } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { optionalTsToDate } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';

const { temporal } = proto;
import { DEFAULT_PRIORITY, deriveState, JOB_STATES, type JobMemo, type WorkflowFacts } from '../domain/job-state.js';
import { RUN_JOB_WORKFLOW } from '../domain/workflow-type.js';
import {
  CONCURRENCY_WAIT_PREFIX,
  concurrencyWaitReason,
  concurrencyWorkflowId,
  type ConcurrencyKeyMemo,
} from '../domain/concurrency.js';

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
    /** The job's concurrency key and limit, when it has one. */
    concurrency: z.object({ key: z.string(), limit: z.number().int() }).optional(),
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
    priority: z
      .number()
      .int()
      .openapi({ description: '1 (first) to 5 (last); 3 for jobs submitted before priorities existed.' }),
    fairnessKey: z.string().optional(),
    fairnessWeight: z.number().optional(),
    startAt: z.string().optional().openapi({ description: 'When the job was asked to start (its `startAt`).' }),
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
  if (job.concurrency && job.state === 'QUEUED' && job.reason?.startsWith(CONCURRENCY_WAIT_PREFIX)) {
    job.reason = await concurrencyWaitNow(client, job.concurrency.key, job.reason);
  }
  if (options.runStart !== false && !job.startedAt && (job.state === 'RUNNING' || job.state === 'CANCELLING')) {
    job.startedAt = (await runStartedAt(client, description))?.toISOString();
  }
  return job;
}

/** A waiting job's reason with the key's holders now, from its semaphore's memo (as recorded otherwise). */
async function concurrencyWaitNow(client: Client, key: string, recorded: string): Promise<string> {
  try {
    const semaphore = await client.workflow.getHandle(concurrencyWorkflowId(key)).describe();
    const memo = semaphore.memo as Partial<ConcurrencyKeyMemo> | undefined;
    if (semaphore.status.name !== 'RUNNING' || memo?.running === undefined || memo.limit === undefined) return recorded;
    return concurrencyWaitReason(key, memo.limit, memo.running);
  } catch {
    return recorded;
  }
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

export function toJobView(d: WorkflowExecutionDescription, now: number = Date.now()): JobView {
  const memo = (d.memo ?? {}) as Partial<JobMemo>;
  const derived = deriveState(workflowFacts(d), memo);
  const { state } = derived;
  // Temporal's own record of who runs first (the workflow's Priority); 0 is its default, 3.
  const priority = d.raw.workflowExecutionInfo?.priority;
  // Held back by its start delay: Temporal runs its first task at the execution time (the asked
  // time plus the start request's latency, so never before it).
  const waitsUntil =
    state === 'QUEUED' && d.executionTime && d.executionTime.getTime() > now ? d.executionTime : undefined;
  const startsAt = waitsUntil && (isoOrUndefined(memo.startAt) ?? waitsUntil.toISOString());
  const reason = derived.reason ?? (startsAt ? `starts at ${startsAt}` : undefined);
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
    concurrency: memo.concurrency,
    usage: memo.usage,
    artifacts: memo.artifacts,
    artifactsTruncated: memo.artifacts ? memo.artifacts.truncated : undefined,
    workflow: { workflowId: d.workflowId, runId: d.runId, status: d.status.name },
    priority: priority?.priorityKey || DEFAULT_PRIORITY,
    fairnessKey: priority?.fairnessKey || undefined,
    fairnessWeight: priority?.fairnessKey ? priority.fairnessWeight || 1 : undefined,
    startAt: isoOrUndefined(memo.startAt),
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
