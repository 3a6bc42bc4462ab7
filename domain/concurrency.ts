/**
 * Concurrency keys: at most `limit` jobs with one key are PROVISIONING or RUNNING at once, on all
 * hosts together. Each key is one semaphore workflow (workflows/concurrency-key.ts); a job's
 * workflow asks it for a permit by signal-with-start, waits for the grant signal before it
 * provisions anything, and releases its permit when it ends. Shared by the API, the workflows and
 * the activities; no imports, so it loads in the workflow sandbox and in the page.
 */
/** What a key may hold: safe in a workflow id, a visibility query and a shell alike. */
export const CONCURRENCY_KEY = /^[A-Za-z0-9_.:/-]{1,128}$/;
/** The largest `limit`: the semaphore keeps its holders in its memo and its continue-as-new input. */
export const MAX_CONCURRENCY_LIMIT = 1000;

/** A job's `concurrency`: jobs sharing `key` run at most `limit` at once. */
export interface Concurrency {
  key: string;
  limit: number;
}

/** Workflow type of the per-key semaphore. */
export const CONCURRENCY_KEY_WORKFLOW = 'concurrencyKey';
/** Workflow id prefix of the per-key semaphores: `hodei-concurrency-<key>`. */
export const CONCURRENCY_WORKFLOW_PREFIX = 'hodei-concurrency-';

/** The semaphore workflow's id for a key (the key's charset needs no escaping in a workflow id). */
export function concurrencyWorkflowId(key: string): string {
  return `${CONCURRENCY_WORKFLOW_PREFIX}${key}`;
}

/** Signal names: job → semaphore (request, release) and semaphore → job (grant). */
export const REQUEST_PERMIT_SIGNAL = 'requestPermit';
export const RELEASE_PERMIT_SIGNAL = 'releasePermit';
export const PERMIT_GRANTED_SIGNAL = 'permitGranted';

/** A job's request for a permit of its key. */
export interface PermitRequest {
  jobId: string;
  /** The job's workflow run: the grant goes to it, and the holder check describes it. */
  runId: string;
  limit: number;
  /** When the job was submitted (its workflow's start): waiters are served in this order. */
  submittedAt: string;
}

export interface PermitRelease {
  jobId: string;
}

export interface PermitGrant {
  key: string;
}

/** A job holding a permit. */
export interface PermitHolder {
  jobId: string;
  runId: string;
  submittedAt: string;
}

/** The semaphore's whole state: its input, and what it carries through continue-as-new. */
export interface ConcurrencyKeyState {
  key: string;
  limit: number;
  holders: PermitHolder[];
  waiters: PermitRequest[];
  /** How often, while it holds permits, the semaphore checks its holders still run. Default 30. */
  checkIntervalSeconds?: number;
  /** How long the semaphore stays open with no holder and no waiter. Default 300. */
  idleSeconds?: number;
  /** History length at which it continues as new (after draining its signals). Default 2000. */
  maxHistoryEvents?: number;
}

/** What the semaphore keeps in its memo (the Web UI and `temporal workflow describe` show it). */
export interface ConcurrencyKeyMemo {
  key: string;
  limit: number;
  /** How many jobs hold a permit. */
  running: number;
  /** Job ids holding a permit (absent when none). */
  holders?: string[];
  /** Job ids waiting, first served first (the first 20; absent when none). */
  waiting?: string[];
  waitingCount: number;
}

/** The job's `reason` while it waits for its key. */
export function concurrencyWaitReason(key: string, limit: number, running?: number): string {
  return running === undefined
    ? `waiting for concurrency key ${key} (limit ${limit})`
    : `waiting for concurrency key ${key} (${running} of limit ${limit} running)`;
}

export const CONCURRENCY_WAIT_PREFIX = 'waiting for concurrency key ';
