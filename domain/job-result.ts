/** What the workflow returns for a job whose script exited 0. */
export interface JobResult {
  exitCode: number;
  containerId: string;
  host: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
}

/** What the run activity reports once the script's container has stopped. */
export interface ScriptOutcome {
  exitCode: number;
  oomKilled: boolean;
  startedAt: string;
  finishedAt: string;
  lastSeq: number;
  /** The run activity removed the container itself: the workflow needs no cleanup activity. */
  removed?: boolean;
}

/** The container the provision activity created, and where its remaining activities must run. */
export interface ProvisionedContainer {
  containerId: string;
  /** Identity of the Docker host holding the container. */
  host: string;
  /** Task queue served by the worker bound to that host. */
  hostTaskQueue: string;
}

/** Heartbeat details of the provision activity. */
export interface ProvisionProgress {
  phase: 'creating' | 'retrying';
  /** When the first failed attempt failed (ms since the epoch); carried across retries. */
  firstFailureAt?: number;
}

/** Heartbeat details of the run activity: enough to reattach after a worker dies. */
export interface RunProgress {
  containerId: string;
  lastSeq: number;
  /** Seq after which this attempt's lines are numbered (0 for the first attempt). */
  seqBase?: number;
}
