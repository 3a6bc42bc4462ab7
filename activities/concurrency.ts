import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import {
  CONCURRENCY_KEY_WORKFLOW,
  concurrencyWorkflowId,
  REQUEST_PERMIT_SIGNAL,
  type ConcurrencyKeyMemo,
  type ConcurrencyKeyState,
  type PermitRequest,
} from '../domain/concurrency.js';

export interface RequestPermitInput {
  key: string;
  /** The queue the semaphore workflow runs on: the job's own. */
  taskQueue: string;
  request: PermitRequest;
}

/**
 * Activities of concurrency keys. They talk to Temporal only, so they run on the control queue
 * (fixed slots), never on the capacity-limited shared queue.
 */
export function createConcurrencyActivities(deps: { client: Client }) {
  const { client } = deps;
  return {
    /** Asks the key's semaphore for a permit, starting the semaphore if it is not running (signal-with-start). */
    async requestConcurrencyPermit(input: RequestPermitInput): Promise<void> {
      const initial: ConcurrencyKeyState = { key: input.key, limit: input.request.limit, holders: [], waiters: [] };
      await client.workflow.signalWithStart(CONCURRENCY_KEY_WORKFLOW, {
        workflowId: concurrencyWorkflowId(input.key),
        taskQueue: input.taskQueue,
        args: [initial],
        signal: REQUEST_PERMIT_SIGNAL,
        signalArgs: [input.request],
        memo: { key: input.key, limit: input.request.limit, running: 0, waitingCount: 0 } satisfies ConcurrencyKeyMemo,
      });
    },

    /** Of these permit holders, the job ids whose workflow run is closed or gone (so cannot release). */
    async concurrencyHoldersGone(holders: { jobId: string; runId: string }[]): Promise<string[]> {
      const gone: string[] = [];
      for (const { jobId, runId } of holders) {
        try {
          const { status } = await client.workflow.getHandle(jobId, runId).describe();
          if (status.name !== 'RUNNING') gone.push(jobId);
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) gone.push(jobId);
          else throw err;
        }
      }
      return gone;
    },
  };
}

export type ConcurrencyActivities = ReturnType<typeof createConcurrencyActivities>;
