import type { JobState } from './job-state.js';

/** What the workflow returns for a job whose script exited 0. */
export interface JobResult {
  exitCode: number;
  containerId: string;
  host: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
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
}
