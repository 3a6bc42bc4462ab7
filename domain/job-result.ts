/** What the workflow returns for a job whose script exited 0. */
export interface JobResult {
  exitCode: number;
  containerId: string;
  host: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
}
