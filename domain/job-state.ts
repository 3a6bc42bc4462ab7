/**
 * The job state machine, in one place: the vocabulary and its terminal set, where a workflow keeps
 * a job's state (memo and search attributes), how Temporal's workflow status and that memo map to a
 * state, and how each state reads in Temporal visibility. Shared by the API, the workflow, the CLI,
 * the web page and the tests; type-only imports, so it loads in the workflow sandbox and in the page.
 */
import type { SearchAttributeKey } from '@temporalio/common/lib/search-attributes.js';
import type { ArtifactsSummary, JobUsage } from './artifacts.js';

/** The one vocabulary of job states, shared by the API, the workflow and the docs. */
export const JOB_STATES = [
  'QUEUED',
  'PROVISIONING',
  'RUNNING',
  'CANCELLING',
  'SUCCEEDED',
  'FAILED',
  'CANCELLED',
  'TIMED_OUT',
] as const;

export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_STATES: readonly JobState[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.includes(state);
}

/**
 * Custom search attributes, registered when the Temporal server starts (scripts/temporal-dev.sh,
 * scripts/temporal-init.sh), so `temporal workflow list --query "HodeiState='RUNNING'"` and the
 * Web UI filter jobs like the API. Plain `{ name, type }`, as `defineSearchAttributeKey` makes them.
 */
export const STATE_KEY: SearchAttributeKey<'KEYWORD'> = { name: 'HodeiState', type: 'KEYWORD' };
export const LABELS_KEY: SearchAttributeKey<'KEYWORD_LIST'> = { name: 'HodeiLabels', type: 'KEYWORD_LIST' };
export const HOST_KEY: SearchAttributeKey<'KEYWORD'> = { name: 'HodeiHost', type: 'KEYWORD' };
/** The job's priority (1-5); absent on jobs submitted before priorities existed. */
export const PRIORITY_KEY: SearchAttributeKey<'INT'> = { name: 'HodeiPriority', type: 'INT' };

/** Priorities, as Temporal's priority keys: 1 runs first; 3 is Temporal's own default. */
export const PRIORITY_MIN = 1;
export const PRIORITY_MAX = 5;
export const DEFAULT_PRIORITY = 3;

/** The job's labels as its `HodeiLabels` search attribute: `key:value` each. */
export function labelsAttribute(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}:${v}`);
}

/**
 * Small facts about a job kept in the workflow's memo, which the API reads through describe
 * (no worker needed). Logs never go here.
 */
export interface JobMemo {
  name: string;
  image: string;
  labels: Record<string, string>;
  state: JobState;
  exitCode?: number;
  reason?: string;
  startedAt?: string;
  finishedAt?: string;
  host?: string;
  containerId?: string;
  oomKilled?: boolean;
  /** Which attempt the job is on (1 for the first). */
  attempt?: number;
  /** The container could not be removed (Docker unreachable); the reaper removes it later. */
  cleanupPending?: boolean;
  /** When the job was asked to start (its `startAt`, ISO 8601), if it was. */
  startAt?: string;
  /** The job's concurrency key and limit (domain/concurrency.ts). */
  concurrency?: { key: string; limit: number };
  /** What the finished attempt used (its container's cgroup). */
  usage?: JobUsage;
  /** What the collection of the job's artifacts kept. */
  artifacts?: ArtifactsSummary;
}

/** The memo a job's workflow starts with: QUEUED. */
export function initialMemo(job: Pick<JobMemo, 'name' | 'image' | 'labels'>): JobMemo {
  return { name: job.name, image: job.image, labels: job.labels, state: 'QUEUED' };
}

/** The memo update that moves a job to `state`, with the facts learnt on the way. */
export function memoForState(state: JobState, facts: Partial<JobMemo> = {}): Partial<JobMemo> {
  return { state, ...facts };
}

/** The `HodeiState` search attribute a workflow keeps for `state`. */
export function stateAttribute(state: JobState) {
  return { key: STATE_KEY, value: state };
}

/** What Temporal's describe (or a visibility listing) tells of a job's workflow. */
export interface WorkflowFacts {
  /** The workflow execution status's name: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, … */
  status: string;
  cancelRequested?: boolean;
  /** The pending `provisionContainer` activity, if any. */
  provisioning?: {
    /** A host took it (it holds a container slot for the job). */
    started: boolean;
    attempt?: number | null;
    lastFailureMessage?: string | null;
  };
}

/** The job state agreed with Temporal's workflow status; see ARCHITECTURE's one vocabulary. */
export function deriveState(workflow: WorkflowFacts, memo: Partial<JobMemo>): { state: JobState; reason?: string } {
  switch (workflow.status) {
    case 'COMPLETED':
      return { state: 'SUCCEEDED' };
    case 'FAILED':
      return { state: memo.state === 'TIMED_OUT' ? 'TIMED_OUT' : 'FAILED' };
    case 'CANCELLED':
      return { state: 'CANCELLED' };
    case 'TERMINATED':
      return { state: 'FAILED', reason: 'workflow terminated' };
    case 'TIMED_OUT':
      return { state: 'TIMED_OUT', reason: 'workflow execution timeout' };
    default:
      break;
  }
  if (workflow.cancelRequested || memo.state === 'CANCELLING') return { state: 'CANCELLING' };
  if (memo.state === 'RUNNING') return { state: 'RUNNING' };
  const provision = workflow.provisioning;
  // Why provisioning keeps failing (engine unreachable, …), while it retries.
  const reason = provision?.lastFailureMessage
    ? `provisioning attempt ${Math.max(1, (provision.attempt ?? 1) - 1)} failed: ${provision.lastFailureMessage}; retrying`
    : undefined;
  // A host takes a job's provisioning only once it holds a container slot for it (the worker's
  // slot supplier): until then the job is queued in Temporal.
  if (provision?.started) return { state: 'PROVISIONING', reason };
  return { state: 'QUEUED', reason };
}

/**
 * States a visibility query can find. PROVISIONING is not among them: the workflow keeps
 * `HodeiState` at QUEUED while its container is created (`GET /jobs/:id` tells the two apart from
 * the pending activity), so a QUEUED filter finds both.
 */
export type ListableState = Exclude<JobState, 'PROVISIONING'>;

/** How each state reads in Temporal visibility: the workflow status and the `HodeiState` it keeps. */
export const STATE_QUERIES: Record<ListableState, string> = {
  QUEUED: "ExecutionStatus = 'Running' AND HodeiState = 'QUEUED'",
  RUNNING: "ExecutionStatus = 'Running' AND HodeiState = 'RUNNING'",
  CANCELLING: "ExecutionStatus = 'Running' AND HodeiState = 'CANCELLING'",
  SUCCEEDED: "ExecutionStatus = 'Completed'",
  CANCELLED: "ExecutionStatus = 'Canceled'",
  FAILED: "((ExecutionStatus = 'Failed' AND HodeiState != 'TIMED_OUT') OR ExecutionStatus = 'Terminated')",
  TIMED_OUT: "((ExecutionStatus = 'Failed' AND HodeiState = 'TIMED_OUT') OR ExecutionStatus = 'TimedOut')",
};

/** The listable states, in the vocabulary's order. */
export const LISTABLE_STATES = JOB_STATES.filter((s): s is ListableState => s !== 'PROVISIONING');
