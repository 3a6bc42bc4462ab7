import { randomUUID } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { WorkflowFailedError } from '@temporalio/client';
import { type ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { Context } from '@temporalio/activity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities } from '../../activities/index.js';
import type { ScriptOutcome } from '../../activities/types.js';
import { FAILURE_JOB_TIMED_OUT, FAILURE_SCRIPT_FAILED } from '../../domain/job-failures.js';
import { HOST_KEY, STATE_KEY } from '../../domain/job-state.js';
import {
  NO_ARTIFACT_ACTIVITIES,
  startWorkflowTestEnv,
  TEST_JOB_INPUT,
  type WorkflowTestEnv,
} from '../support/workflow-env.js';

// Workflow logic on the real local Temporal binary, with the activities mocked as plain objects.
Runtime.install({ logger: new DefaultLogger('WARN') });
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let testEnv: WorkflowTestEnv | undefined;

beforeAll(async () => {
  testEnv = await startWorkflowTestEnv();
  ({ env, bundle } = testEnv);
}, 120_000);

afterAll(async () => {
  await testEnv?.stop();
});

const input = TEST_JOB_INPUT;

interface Calls {
  provisioned: number;
  ran: number;
  removed: string[];
  /** Containers whose host was told to stop their run (`stopRun`). */
  stopped: string[];
}

/** Mocked activities; provisioning returns this test's own queue as the "host" queue. */
function mockActivities(taskQueue: string, run: () => Promise<Awaited<ReturnType<Activities['runScript']>>>) {
  const calls: Calls = { provisioned: 0, ran: 0, removed: [], stopped: [] };
  const activities: Activities = {
    async provisionContainer() {
      calls.provisioned += 1;
      return { containerId: 'c1', host: 'test-host', hostTaskQueue: taskQueue };
    },
    async runScript() {
      calls.ran += 1;
      return run();
    },
    async removeContainer({ containerId }) {
      calls.removed.push(containerId);
    },
    async stopRun({ containerId }) {
      calls.stopped.push(containerId);
      hostStops.emit('stop', containerId);
    },
    // Jobs here declare no artifacts: never called.
    ...NO_ARTIFACT_ACTIVITIES,
  };
  return { activities, calls };
}

const outcome = (exitCode: number) => ({
  exitCode,
  oomKilled: false,
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:00:01.500Z',
  lastSeq: 3,
});

/** Where the mocked `stopRun` tells the mocked runs of this process to stop. */
const hostStops = new EventEmitter();

/**
 * A run activity that never heartbeats (so no cancel reaches it that way) and ends only when its
 * host is told to stop it, as the real one does then: with the stop's exit, `cancelled`.
 */
async function runUntilStoppedByHost(): Promise<ScriptOutcome> {
  const [containerId] = (await once(hostStops, 'stop')) as [string];
  expect(containerId).toBe('c1');
  return { ...outcome(143), cancelled: true };
}

/** A run activity that never ends by itself: it heartbeats until cancelled, like the real one. */
async function runUntilCancelled(): Promise<never> {
  const ctx = Context.current();
  const beat = setInterval(() => ctx.heartbeat(), 50);
  try {
    return await ctx.cancelled;
  } finally {
    clearInterval(beat);
  }
}

async function withWorker<T>(activities: Activities, taskQueue: string, fn: () => Promise<T>): Promise<T> {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities,
    maxHeartbeatThrottleInterval: '50 milliseconds',
  });
  return worker.runUntil(fn);
}

describe('runJob workflow', () => {
  it('completes with the exit code and timings, and removes the container', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const { activities, calls } = mockActivities(taskQueue, async () => outcome(0));
    const result = await withWorker(activities, taskQueue, () =>
      env.client.workflow.execute('runJob', { workflowId: randomUUID(), taskQueue, args: [input] }),
    );
    expect(result).toMatchObject({ exitCode: 0, containerId: 'c1', host: 'test-host', durationMs: 1500 });
    expect(calls.removed).toEqual(['c1']);
  });

  it('schedules no cleanup when the run activity removed the container itself', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const { activities, calls } = mockActivities(taskQueue, async () => ({ ...outcome(0), removed: true }));
    const workflowId = randomUUID();
    const result = await withWorker(activities, taskQueue, () =>
      env.client.workflow.execute('runJob', { workflowId, taskQueue, args: [input] }),
    );
    expect(result).toMatchObject({ exitCode: 0, containerId: 'c1' });
    expect(calls.removed).toEqual([]);
    const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
    const activityTypes = history.events!.flatMap(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? [],
    );
    expect(activityTypes).toEqual(['provisionContainer', 'runScript']);
  });

  it('records the host with the RUNNING state in one upsert (hostWithState); older inputs upsert it alone', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const { activities } = mockActivities(taskQueue, async () => ({ ...outcome(0), removed: true }));
    const ids = { merged: randomUUID(), old: randomUUID() };
    await withWorker(activities, taskQueue, () =>
      Promise.all([
        env.client.workflow.execute('runJob', {
          workflowId: ids.merged,
          taskQueue,
          args: [{ ...input, hostWithState: true }],
        }),
        env.client.workflow.execute('runJob', { workflowId: ids.old, taskQueue, args: [input] }),
      ]),
    );
    const upserts = async (workflowId: string) => {
      const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
      return history.events!.flatMap((e) => {
        const fields = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields;
        return fields ? [Object.keys(fields).sort().join('+')] : [];
      });
    };
    expect(await upserts(ids.merged)).toEqual(['HodeiHost+HodeiState', 'HodeiState']);
    expect(await upserts(ids.old)).toEqual(['HodeiHost', 'HodeiState', 'HodeiState']);
    for (const id of Object.values(ids)) {
      const { typedSearchAttributes } = await env.client.workflow.getHandle(id).describe();
      expect(typedSearchAttributes.get(HOST_KEY)).toBe('test-host');
      expect(typedSearchAttributes.get(STATE_KEY)).toBe('SUCCEEDED');
    }
  });

  it('fails with ScriptFailed on a non-zero exit code, still removing the container', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const { activities, calls } = mockActivities(taskQueue, async () => outcome(3));
    const workflowId = randomUUID();
    const err = await withWorker(activities, taskQueue, () =>
      env.client.workflow.execute('runJob', { workflowId, taskQueue, args: [input] }).catch((e: unknown) => e),
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(((err as WorkflowFailedError).cause as ApplicationFailure).type).toBe(FAILURE_SCRIPT_FAILED);
    expect(calls.removed).toEqual(['c1']);
    const { memo } = await env.client.workflow.getHandle(workflowId).describe();
    expect(memo).toMatchObject({ state: 'FAILED', exitCode: 3, reason: 'exit code 3' });
  });

  it('times out with JobTimedOut: the run is cancelled and the container removed', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const { activities, calls } = mockActivities(taskQueue, runUntilCancelled);
    const workflowId = randomUUID();
    const err = await withWorker(activities, taskQueue, () =>
      env.client.workflow
        .execute('runJob', { workflowId, taskQueue, args: [{ ...input, timeoutSeconds: 4 }] })
        .catch((e: unknown) => e),
    );
    expect(((err as WorkflowFailedError).cause as ApplicationFailure).type).toBe(FAILURE_JOB_TIMED_OUT);
    expect(calls.ran).toBe(1);
    expect(calls.removed).toEqual(['c1']);
    const { memo, status } = await env.client.workflow.getHandle(workflowId).describe();
    expect(status.name).toBe('FAILED');
    expect(memo).toMatchObject({ state: 'TIMED_OUT' });
  });

  it('is cancelled only after the run stopped and the container was removed', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const order: string[] = [];
    const { activities, calls } = mockActivities(taskQueue, async () => {
      try {
        return await runUntilCancelled();
      } finally {
        order.push('run stopped');
      }
    });
    const remove = activities.removeContainer;
    activities.removeContainer = async (args) => {
      order.push('removed');
      return remove(args);
    };
    const workflowId = randomUUID();
    const err = await withWorker(activities, taskQueue, async () => {
      const handle = await env.client.workflow.start('runJob', { workflowId, taskQueue, args: [input] });
      while (calls.ran === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      await handle.cancel();
      return handle.result().catch((e: unknown) => e);
    });
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(order).toEqual(['run stopped', 'removed']);
    // An input from before `hostStops`: the cancel reaches the run with its heartbeat alone.
    expect(calls.stopped).toEqual([]);
    const { status, memo } = await env.client.workflow.getHandle(workflowId).describe();
    expect(status.name).toBe('CANCELLED');
    expect(memo).toMatchObject({ state: 'CANCELLED' });
  });

  it('tells the host to stop the run at a cancel: the run ends at once as cancelled, then the container goes', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const { activities, calls } = mockActivities(taskQueue, runUntilStoppedByHost);
    const workflowId = randomUUID();
    const err = await withWorker(activities, taskQueue, async () => {
      const handle = await env.client.workflow.start('runJob', {
        workflowId,
        taskQueue,
        args: [{ ...input, hostStops: true }],
      });
      while (calls.ran === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      await handle.cancel();
      return handle.result().catch((e: unknown) => e);
    });
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(calls.stopped).toEqual(['c1']);
    expect(calls.removed).toEqual(['c1']);
    const { status, memo } = await env.client.workflow.getHandle(workflowId).describe();
    expect(status.name).toBe('CANCELLED');
    expect(memo).toMatchObject({ state: 'CANCELLED', reason: 'cancelled' });
    // The run activity completed (its host stopped it), it was not cancelled by a heartbeat.
    const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
    const types = history.events!.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    expect(types).toEqual(['provisionContainer', 'runScript', 'stopRun', 'removeContainer']);
    expect(history.events!.filter((e) => e.activityTaskCompletedEventAttributes)).toHaveLength(4);
  });

  it('tells the host to stop the run at the deadline too: the job times out at once', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const { activities, calls } = mockActivities(taskQueue, runUntilStoppedByHost);
    const workflowId = randomUUID();
    const err = await withWorker(activities, taskQueue, () =>
      env.client.workflow
        .execute('runJob', { workflowId, taskQueue, args: [{ ...input, timeoutSeconds: 2, hostStops: true }] })
        .catch((e: unknown) => e),
    );
    expect(((err as WorkflowFailedError).cause as ApplicationFailure).type).toBe(FAILURE_JOB_TIMED_OUT);
    expect(calls.stopped).toEqual(['c1']);
    expect(calls.removed).toEqual(['c1']);
  });

  it('ends the job anyway when the container cannot be removed, flagging cleanupPending', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const { activities } = mockActivities(taskQueue, async () => outcome(0));
    let removeAttempts = 0;
    activities.removeContainer = async () => {
      removeAttempts += 1;
      throw new Error('connect ENOENT /var/run/docker.sock');
    };
    const workflowId = randomUUID();
    const result = await withWorker(activities, taskQueue, () =>
      env.client.workflow.execute('runJob', { workflowId, taskQueue, args: [input] }),
    );
    expect(result.exitCode).toBe(0);
    expect(removeAttempts).toBeGreaterThan(1);
    const { memo } = await env.client.workflow.getHandle(workflowId).describe();
    expect(memo).toMatchObject({ state: 'SUCCEEDED', cleanupPending: true });
  });

  it('cancelled while provisioning: waits for the provision to undo itself, never runs', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const { activities, calls } = mockActivities(taskQueue, async () => outcome(0));
    let provisionUndone = false;
    activities.provisionContainer = async () => {
      calls.provisioned += 1;
      try {
        return await runUntilCancelled();
      } finally {
        // The real activity removes the container it created before rethrowing.
        provisionUndone = true;
      }
    };
    const err = await withWorker(activities, taskQueue, async () => {
      const handle = await env.client.workflow.start('runJob', { workflowId: randomUUID(), taskQueue, args: [input] });
      while (calls.provisioned === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      await handle.cancel();
      return handle.result().catch((e: unknown) => e);
    });
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(provisionUndone).toBe(true);
    expect(calls).toEqual({ provisioned: 1, ran: 0, removed: [], stopped: [] });
  });

  it('cancelled while queued: never runs and creates nothing to remove', async () => {
    const taskQueue = `test-${randomUUID()}`;
    // No worker polls yet: the provision activity stays scheduled, like a job waiting for capacity.
    const handle = await env.client.workflow.start('runJob', { workflowId: randomUUID(), taskQueue, args: [input] });
    const { activities, calls } = mockActivities(taskQueue, async () => outcome(0));
    await handle.cancel();
    const err = await withWorker(activities, taskQueue, () => handle.result().catch((e: unknown) => e));
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(calls).toEqual({ provisioned: 0, ran: 0, removed: [], stopped: [] });
  });
});
