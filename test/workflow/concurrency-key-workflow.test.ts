import { randomUUID } from 'node:crypto';
import { type WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConcurrencyActivities } from '../../activities/concurrency.js';
import type { Activities } from '../../activities/index.js';
import {
  CONCURRENCY_KEY_WORKFLOW,
  concurrencyWorkflowId,
  type ConcurrencyKeyMemo,
  type ConcurrencyKeyState,
} from '../../domain/concurrency.js';
import { controlTaskQueue } from '../../domain/task-queues.js';
import {
  NO_ARTIFACT_ACTIVITIES,
  NO_HOST_STOP,
  startWorkflowTestEnv,
  TEST_JOB_INPUT,
  type WorkflowTestEnv,
} from '../support/workflow-env.js';
import { waitFor } from '../support/wait.js';

// The semaphore's logic on the real local Temporal binary: the permit activities are the real
// ones (they talk to Temporal only), the container activities are mocked.
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

const baseInput = TEST_JOB_INPUT;

/** Container activities whose runs end when the test says so; records starts and the most running at once. */
function fakeHost(taskQueue: string) {
  const started: string[] = [];
  const provisioned: string[] = [];
  const finish = new Map<string, () => void>();
  let running = 0;
  let maxRunning = 0;
  const activities: Activities = {
    ...NO_ARTIFACT_ACTIVITIES,
    ...NO_HOST_STOP,
    async provisionContainer({ jobId }) {
      provisioned.push(jobId);
      return { containerId: `c-${jobId}`, host: 'test-host', hostTaskQueue: taskQueue };
    },
    async runScript({ jobId }) {
      started.push(jobId);
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      try {
        await new Promise<void>((resolve) => finish.set(jobId, resolve));
      } finally {
        running -= 1;
      }
      return {
        exitCode: 0,
        oomKilled: false,
        startedAt: new Date().toISOString(),
        finishedAt: new Date().toISOString(),
        lastSeq: 0,
        removed: true,
      };
    },
    async removeContainer() {},
  };
  return {
    activities,
    started,
    provisioned,
    get running() {
      return running;
    },
    get maxRunning() {
      return maxRunning;
    },
    /** Ends a running job's script (waits until it runs). */
    async end(jobId: string) {
      await waitFor(`${jobId} to run`, async () => finish.get(jobId), { timeoutMs: 30_000, intervalMs: 20 });
      finish.get(jobId)!();
      finish.delete(jobId);
    },
  };
}

/** Runs `fn` with a worker for the workflows and container activities, and one for the control queue. */
async function withWorkers<T>(activities: Activities, taskQueue: string, fn: () => Promise<T>): Promise<T> {
  const main = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities });
  const control = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: controlTaskQueue(taskQueue),
    activities: createConcurrencyActivities({ client: env.client }),
  });
  return control.runUntil(() => main.runUntil(fn));
}

function startJob(taskQueue: string, key: string, limit: number): Promise<WorkflowHandle> {
  return env.client.workflow.start('runJob', {
    workflowId: `job-${randomUUID()}`,
    taskQueue,
    args: [{ ...baseInput, concurrency: { key, limit } }],
  });
}

async function semaphoreMemo(key: string): Promise<ConcurrencyKeyMemo> {
  return (await env.client.workflow.getHandle(concurrencyWorkflowId(key)).describe())
    .memo as unknown as ConcurrencyKeyMemo;
}

/** Waits until the key's semaphore has `count` waiters (so the next submissions queue behind them). */
const waitForWaiting = (key: string, count: number) =>
  waitFor(
    `${count} waiting on ${key}`,
    async () => ((await semaphoreMemo(key)).waitingCount === count ? true : undefined),
    {
      timeoutMs: 30_000,
      intervalMs: 50,
    },
  );

describe('concurrency key semaphore', () => {
  it('limit 1: one job at a time, in submission order, none provisioned while waiting', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const key = `k1-${randomUUID()}`;
    const host = fakeHost(taskQueue);
    await withWorkers(host.activities, taskQueue, async () => {
      const first = await startJob(taskQueue, key, 1);
      await waitFor('first to run', async () => (host.started.length === 1 ? true : undefined), { timeoutMs: 30_000 });
      const rest: WorkflowHandle[] = [];
      for (let i = 0; i < 3; i += 1) rest.push(await startJob(taskQueue, key, 1));
      await waitForWaiting(key, 3);
      expect(host.provisioned).toEqual([first.workflowId]);
      const { memo } = await rest[0]!.describe();
      expect(memo).toMatchObject({ state: 'QUEUED', reason: `waiting for concurrency key ${key} (limit 1)` });
      for (const job of [first, ...rest]) {
        await host.end(job.workflowId);
        await job.result();
      }
      expect(host.started).toEqual([first, ...rest].map((j) => j.workflowId));
      expect(host.maxRunning).toBe(1);
    });
    // The last release reaches the semaphore just after its job ended.
    await waitFor('every permit back', async () => {
      const memo = await semaphoreMemo(key);
      return memo.running === 0 && memo.waitingCount === 0 && memo.limit === 1 ? true : undefined;
    });
  });

  it('limit 2: two at a time; a job cancelled while waiting leaves the line, never provisioned', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const key = `k2-${randomUUID()}`;
    const host = fakeHost(taskQueue);
    await withWorkers(host.activities, taskQueue, async () => {
      const a = await startJob(taskQueue, key, 2);
      const b = await startJob(taskQueue, key, 2);
      await waitFor('two to run', async () => (host.running === 2 ? true : undefined), { timeoutMs: 30_000 });
      const c = await startJob(taskQueue, key, 2);
      const d = await startJob(taskQueue, key, 2);
      await waitForWaiting(key, 2);
      await c.cancel();
      const err = await c.result().catch((e: unknown) => e);
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect((await c.describe()).memo).toMatchObject({ state: 'CANCELLED' });
      await waitForWaiting(key, 1);
      await host.end(a.workflowId);
      await host.end(d.workflowId);
      await host.end(b.workflowId);
      await Promise.all([a.result(), b.result(), d.result()]);
      expect(host.provisioned).not.toContain(c.workflowId);
      expect(host.started.slice(2)).toEqual([d.workflowId]);
      expect(host.maxRunning).toBe(2);
    });
  });

  it('takes back the permit of a holder that was terminated (it never released)', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const key = `kt-${randomUUID()}`;
    const host = fakeHost(taskQueue);
    // Started ahead of the jobs, with a short holder check; their requests then only signal it.
    const state: ConcurrencyKeyState = { key, limit: 1, holders: [], waiters: [], checkIntervalSeconds: 1 };
    await withWorkers(host.activities, taskQueue, async () => {
      await env.client.workflow.start(CONCURRENCY_KEY_WORKFLOW, {
        workflowId: concurrencyWorkflowId(key),
        taskQueue,
        args: [state],
      });
      const held = await startJob(taskQueue, key, 1);
      await waitFor('holder to run', async () => (host.started.length === 1 ? true : undefined), { timeoutMs: 30_000 });
      const next = await startJob(taskQueue, key, 1);
      await waitForWaiting(key, 1);
      await held.terminate('gone without its finally');
      await waitFor('the next job to run', async () => (host.started.length === 2 ? true : undefined), {
        timeoutMs: 30_000,
      });
      expect(host.started).toEqual([held.workflowId, next.workflowId]);
      // The terminated job's run activity never learns of it (no heartbeats here): ended by hand.
      await host.end(held.workflowId);
      await host.end(next.workflowId);
      await next.result();
    });
  });

  it('continues as new with its holders and waiters, keeping the limit and the order', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const key = `kc-${randomUUID()}`;
    const host = fakeHost(taskQueue);
    const state: ConcurrencyKeyState = { key, limit: 1, holders: [], waiters: [], maxHistoryEvents: 25 };
    await withWorkers(host.activities, taskQueue, async () => {
      const semaphore = await env.client.workflow.start(CONCURRENCY_KEY_WORKFLOW, {
        workflowId: concurrencyWorkflowId(key),
        taskQueue,
        args: [state],
      });
      const jobs: WorkflowHandle[] = [await startJob(taskQueue, key, 1)];
      await waitFor('first to run', async () => (host.started.length === 1 ? true : undefined), { timeoutMs: 30_000 });
      for (let i = 0; i < 5; i += 1) jobs.push(await startJob(taskQueue, key, 1));
      await waitForWaiting(key, 5);
      for (const job of jobs) {
        await host.end(job.workflowId);
        await job.result();
      }
      expect(host.started).toEqual(jobs.map((j) => j.workflowId));
      expect(host.maxRunning).toBe(1);
      const current = await env.client.workflow.getHandle(concurrencyWorkflowId(key)).describe();
      expect(current.runId).not.toBe(semaphore.firstExecutionRunId);
      const first = await env.client.workflow
        .getHandle(concurrencyWorkflowId(key), semaphore.firstExecutionRunId)
        .describe();
      expect(first.status.name).toBe('CONTINUED_AS_NEW');
    });
  });

  it('a waiting job does not hold up jobs without a key', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const key = `ku-${randomUUID()}`;
    const host = fakeHost(taskQueue);
    await withWorkers(host.activities, taskQueue, async () => {
      const keyed = [await startJob(taskQueue, key, 1)];
      await waitFor('the first keyed job to run', async () => (host.running === 1 ? true : undefined), {
        timeoutMs: 30_000,
      });
      keyed.push(await startJob(taskQueue, key, 1));
      await waitForWaiting(key, 1);
      const free = await env.client.workflow.start('runJob', {
        workflowId: `job-${randomUUID()}`,
        taskQueue,
        args: [baseInput],
      });
      await host.end(free.workflowId);
      await free.result();
      expect(host.running).toBe(1);
      for (const job of keyed) {
        await host.end(job.workflowId);
        await job.result();
      }
      // The unkeyed job's history holds no permit traffic.
      const history = await free.fetchHistory();
      expect(history.events!.some((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes)).toBe(false);
      expect(history.events!.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? [])).toEqual([
        'provisionContainer',
        'runScript',
      ]);
    });
  });
});
