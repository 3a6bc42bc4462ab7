import { randomUUID } from 'node:crypto';
import { type WorkflowFailedError } from '@temporalio/client';
import { type ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { Context } from '@temporalio/activity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities } from '../../activities/index.js';
import { initialPipelineMemo, toPipelineView, type PipelineView } from '../../api/pipelines.js';
import type { JobInput } from '../../domain/job-spec.js';
import type { PipelineInput } from '../../domain/pipeline-spec.js';
import { FAILURE_PIPELINE_FAILED, stepJobId } from '../../domain/pipeline-state.js';
import type { runPipeline } from '../../workflows/run-pipeline.js';
import {
  NO_ARTIFACT_ACTIVITIES,
  NO_HOST_STOP,
  startWorkflowTestEnv,
  type WorkflowTestEnv,
} from '../support/workflow-env.js';

// runPipeline on the real local Temporal binary: its steps are real runJob children whose
// activities are mocked, each step's script saying what its mocked run does.
Runtime.install({ logger: new DefaultLogger('WARN') });
let testEnv: WorkflowTestEnv;
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  testEnv = await startWorkflowTestEnv();
  ({ env, bundle } = testEnv);
}, 120_000);

afterAll(() => testEnv?.stop());

const job = (script: string): JobInput => ({
  script,
  name: script,
  image: 'hodei-worker:latest',
  env: {},
  timeoutSeconds: 60,
  cancelGraceSeconds: 0,
  labels: {},
  resources: { memoryMb: 256, cpus: 1, pidsLimit: 64, scratchMb: 64 },
  retries: 0,
  infraRetries: 0,
  hostLossSeconds: 30,
  cleanupDeadlineSeconds: 3,
});

type Step = { name: string; needs?: string[]; script: string; allowFailure?: boolean };
const pipeline = (steps: Step[], failFast = false): PipelineInput => ({
  name: 'test',
  labels: {},
  failFast,
  steps: steps.map((s) => ({
    name: s.name,
    needs: s.needs ?? [],
    allowFailure: s.allowFailure ?? false,
    job: job(s.script),
  })),
});

interface RunEvent {
  jobId: string;
  what: 'start' | 'end';
  at: number;
}

/**
 * Mocked activities: `ok` succeeds, `fail` exits 3, `block` runs until cancelled, `pair` waits
 * (up to 10 s) until another `pair` step runs at the same time, which only parallel steps do.
 */
function mockActivities(taskQueue: string) {
  const scripts = new Map<string, string>();
  const events: RunEvent[] = [];
  const removed: string[] = [];
  let pairsRunning = 0;
  let paired = false;
  const activities: Activities = {
    ...NO_ARTIFACT_ACTIVITIES,
    ...NO_HOST_STOP,
    async provisionContainer({ jobId, script }) {
      scripts.set(jobId, script);
      return { containerId: jobId, host: 'test-host', hostTaskQueue: taskQueue };
    },
    async runScript({ jobId }) {
      const ctx = Context.current();
      events.push({ jobId, what: 'start', at: Date.now() });
      const beat = setInterval(() => ctx.heartbeat(), 50);
      const script = scripts.get(jobId)!;
      try {
        if (script === 'block') await ctx.cancelled;
        if (script === 'pair') {
          pairsRunning += 1;
          for (let i = 0; i < 200 && !paired; i += 1) {
            if (pairsRunning >= 2) paired = true;
            else await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
        const now = new Date().toISOString();
        return { exitCode: script === 'fail' ? 3 : 0, oomKilled: false, startedAt: now, finishedAt: now, lastSeq: 0 };
      } finally {
        clearInterval(beat);
        events.push({ jobId, what: 'end', at: Date.now() });
      }
    },
    async removeContainer({ containerId }) {
      removed.push(containerId);
    },
  };
  return { activities, events, removed, overlapped: () => paired };
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

/** Starts a pipeline as the API does (its initial memo included). */
async function start(input: PipelineInput, taskQueue: string) {
  const workflowId = randomUUID();
  return env.client.workflow.start<typeof runPipeline>('runPipeline', {
    workflowId,
    taskQueue,
    args: [input],
    memo: { ...initialPipelineMemo(input, workflowId) },
  });
}

async function view(id: string): Promise<PipelineView> {
  return toPipelineView(await env.client.workflow.getHandle(id).describe());
}

const stepStates = (p: PipelineView) => Object.fromEntries(p.steps.map((s) => [s.name, s.state]));

function waitUntil(check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (check()) {
        clearInterval(timer);
        resolve();
      }
    }, 20);
  });
}

describe('runPipeline workflow', () => {
  it('runs a diamond: independent steps in parallel, each after its needs, as labelled jobs', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const mock = mockActivities(taskQueue);
    const input = pipeline([
      { name: 'build', script: 'ok' },
      { name: 'test-a', needs: ['build'], script: 'pair' },
      { name: 'test-b', needs: ['build'], script: 'pair' },
      { name: 'package', needs: ['test-a', 'test-b'], script: 'ok' },
    ]);
    const handle = await start(input, taskQueue);
    const result = await withWorker(mock.activities, taskQueue, () => handle.result());
    expect(result.steps.map((s) => s.state)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(mock.overlapped()).toBe(true);
    const at = (step: string, what: RunEvent['what']) =>
      mock.events.find((e) => e.jobId === stepJobId(handle.workflowId, step) && e.what === what)!.at;
    expect(at('test-a', 'start')).toBeGreaterThanOrEqual(at('build', 'end'));
    expect(at('test-b', 'start')).toBeGreaterThanOrEqual(at('build', 'end'));
    expect(at('package', 'start')).toBeGreaterThanOrEqual(Math.max(at('test-a', 'end'), at('test-b', 'end')));
    // Each step ran once, as a job of its own.
    expect(mock.events.filter((e) => e.what === 'start')).toHaveLength(4);

    const p = await view(handle.workflowId);
    expect(p.state).toBe('SUCCEEDED');
    expect(p.steps.every((s) => s.jobId && s.startedAt && s.finishedAt && s.durationMs !== undefined)).toBe(true);
    expect(p.criticalPath.steps).toHaveLength(3);
    expect(p.criticalPath.steps[0]).toBe('build');
    const child = await env.client.workflow.getHandle(stepJobId(handle.workflowId, 'test-a')).describe();
    expect(child.type).toBe('runJob');
    // A job like any other (the labels pipeline and step come with the input the API resolves).
    expect(child.memo).toMatchObject({ state: 'SUCCEEDED', name: 'pair' });
    expect(child.parentExecution?.workflowId).toBe(handle.workflowId);

    // Its history replays on the current code (no step started twice on a replay).
    const history = await handle.fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, handle.workflowId);
    expect(history.events!.length).toBeLessThan(80);
  });

  it('a failed step skips its dependants, an independent branch still succeeds, the pipeline fails', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const mock = mockActivities(taskQueue);
    const handle = await start(
      pipeline([
        { name: 'bad', script: 'fail' },
        { name: 'after-bad', needs: ['bad'], script: 'ok' },
        { name: 'after-after', needs: ['after-bad'], script: 'ok' },
        { name: 'other', script: 'ok' },
      ]),
      taskQueue,
    );
    const err = await withWorker(mock.activities, taskQueue, () => handle.result().catch((e: unknown) => e));
    expect(((err as WorkflowFailedError).cause as ApplicationFailure).type).toBe(FAILURE_PIPELINE_FAILED);
    const p = await view(handle.workflowId);
    expect(p.state).toBe('FAILED');
    expect(p.reason).toMatch(/step bad failed: script failed: exit code 3/);
    expect(stepStates(p)).toEqual({
      bad: 'FAILED',
      'after-bad': 'SKIPPED',
      'after-after': 'SKIPPED',
      other: 'SUCCEEDED',
    });
    expect(p.steps.find((s) => s.name === 'after-bad')!.jobId).toBeUndefined();
  });

  it('failFast cancels the running branch (its container removed) and skips the rest', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const mock = mockActivities(taskQueue);
    const input = pipeline(
      [
        { name: 'slow', script: 'block' },
        { name: 'after-slow', needs: ['slow'], script: 'ok' },
        { name: 'gate', script: 'ok' },
        { name: 'bad', needs: ['gate'], script: 'fail' },
      ],
      true,
    );
    const handle = await start(input, taskQueue);
    const err = await withWorker(mock.activities, taskQueue, () => handle.result().catch((e: unknown) => e));
    expect(((err as WorkflowFailedError).cause as ApplicationFailure).type).toBe(FAILURE_PIPELINE_FAILED);
    const p = await view(handle.workflowId);
    expect(stepStates(p)).toEqual({ slow: 'CANCELLED', 'after-slow': 'SKIPPED', gate: 'SUCCEEDED', bad: 'FAILED' });
    expect(mock.removed).toContain(stepJobId(handle.workflowId, 'slow'));
    const slow = await env.client.workflow.getHandle(stepJobId(handle.workflowId, 'slow')).describe();
    expect(slow.status.name).toBe('CANCELLED');
  });

  it('allowFailure: the step fails, its dependants run, the pipeline succeeds', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const mock = mockActivities(taskQueue);
    const handle = await start(
      pipeline([
        { name: 'flaky', script: 'fail', allowFailure: true },
        { name: 'next', needs: ['flaky'], script: 'ok' },
      ]),
      taskQueue,
    );
    await withWorker(mock.activities, taskQueue, () => handle.result());
    const p = await view(handle.workflowId);
    expect(p.state).toBe('SUCCEEDED');
    expect(stepStates(p)).toEqual({ flaky: 'FAILED', next: 'SUCCEEDED' });
  });

  it('cancelled: the running step is cancelled (container removed first), the pending ones skipped', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const mock = mockActivities(taskQueue);
    const handle = await start(
      pipeline([
        { name: 'long', script: 'block' },
        { name: 'then', needs: ['long'], script: 'ok' },
      ]),
      taskQueue,
    );
    let removedAtEnd: string[] = [];
    const err = await withWorker(mock.activities, taskQueue, async () => {
      await waitUntil(() => mock.events.length > 0);
      await handle.cancel();
      const e = await handle.result().catch((x: unknown) => x);
      removedAtEnd = [...mock.removed];
      return e;
    });
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(removedAtEnd).toEqual([stepJobId(handle.workflowId, 'long')]);
    const p = await view(handle.workflowId);
    expect(p.state).toBe('CANCELLED');
    expect(stepStates(p)).toEqual({ long: 'CANCELLED', then: 'SKIPPED' });
  });

  it("cancelling one step's job alone fails that step (and the pipeline, without allowFailure)", async () => {
    const taskQueue = `test-${randomUUID()}`;
    const mock = mockActivities(taskQueue);
    const handle = await start(
      pipeline([
        { name: 'long', script: 'block' },
        { name: 'then', needs: ['long'], script: 'ok' },
      ]),
      taskQueue,
    );
    const err = await withWorker(mock.activities, taskQueue, async () => {
      await waitUntil(() => mock.events.length > 0);
      await env.client.workflow.getHandle(stepJobId(handle.workflowId, 'long')).cancel();
      return handle.result().catch((x: unknown) => x);
    });
    expect(((err as WorkflowFailedError).cause as ApplicationFailure).type).toBe(FAILURE_PIPELINE_FAILED);
    const p = await view(handle.workflowId);
    expect(stepStates(p)).toEqual({ long: 'FAILED', then: 'SKIPPED' });
    expect(p.steps[0]!.reason).toBe('its job was cancelled');
  });

  it('cancelled before anything started: every step SKIPPED, no job ever started', async () => {
    const taskQueue = `test-${randomUUID()}`;
    const mock = mockActivities(taskQueue);
    // No worker yet: the cancel arrives with the pipeline's first task.
    const handle = await start(
      pipeline([
        { name: 'a', script: 'ok' },
        { name: 'b', needs: ['a'], script: 'ok' },
      ]),
      taskQueue,
    );
    await handle.cancel();
    const err = await withWorker(mock.activities, taskQueue, () => handle.result().catch((x: unknown) => x));
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    const p = await view(handle.workflowId);
    expect(p.state).toBe('CANCELLED');
    expect(stepStates(p)).toEqual({ a: 'SKIPPED', b: 'SKIPPED' });
    expect(mock.events).toEqual([]);
    const children: string[] = [];
    for await (const w of env.client.workflow.list({ query: `ParentWorkflowId = '${handle.workflowId}'` }))
      children.push(w.workflowId);
    expect(children).toEqual([]);
  });
});
