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
