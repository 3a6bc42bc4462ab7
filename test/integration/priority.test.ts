import { randomUUID } from 'node:crypto';
import { Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobSpec } from '../../api-client/index.js';
import { api, clientFor, containerEvents, jobContainers, type Job } from '../support/api-client.js';
import { startStack, type RunningStack } from '../support/stack.js';
import { temporalCli } from '../support/temporal.js';
import { waitFor } from '../support/wait.js';

// Who runs first (issue 13), on a stack of its own with one container slot: a backlog builds
// up behind a blocker, the blocker is cancelled, and the order the backlog then starts in (each
// job's startedAt: they run one at a time) is what Temporal's matcher chose.
let small: RunningStack;
let temporal: Connection;
beforeAll(async () => {
  small = await startStack({ capacity: 1 });
  temporal = await Connection.connect({ address: small.info.temporalAddress });
});
afterAll(async () => {
  await temporal?.close();
  await small?.stop();
});

const client = clientFor(() => small.info);

/** The job's provisioning task is in Temporal's backlog (its workflow asked for a container). */
async function provisioningQueued(id: string): Promise<true | undefined> {
  const { pendingActivities } = await temporal.workflowService.describeWorkflowExecution({
    namespace: small.info.namespace,
    execution: { workflowId: id },
  });
  return pendingActivities?.some((a) => a.activityType?.name === 'provisionContainer') ? true : undefined;
}

/** Submits a job and waits until its provisioning task waits in the backlog, so backlog order is submission order. */
async function submitQueued(spec: Omit<JobSpec, 'script'>, script = 'true'): Promise<Job> {
  const job = await client.submit({ cancelGraceSeconds: 0, ...spec, script });
  await waitFor(`job ${job.id}'s provisioning task to be queued`, () => provisioningQueued(job.id));
  return job;
}

/** Builds a backlog behind a job holding the one slot, releases it, and gives the backlog's start order. */
async function startOrder(
  backlog: Array<Omit<JobSpec, 'script'>>,
): Promise<Array<{ job: Job; spec: Omit<JobSpec, 'script'> }>> {
  const blocker = await client.submit({ script: 'sleep 600', cancelGraceSeconds: 0 });
  await client.waitForState(blocker.id, ['RUNNING']);
  const queued = [];
  for (const spec of backlog) queued.push({ spec, job: await submitQueued(spec) });
  for (const { job } of queued) expect((await client.getJob(job.id)).state).toBe('QUEUED');
  await client.cancel(blocker.id);
  await client.waitForEnd(blocker.id);
  const ended = await Promise.all(queued.map(async (q) => ({ ...q, job: await client.waitForEnd(q.job.id, 120_000) })));
  for (const { job } of ended) expect(job.state).toBe('SUCCEEDED');
  return ended.sort((a, b) => Date.parse(a.job.startedAt!) - Date.parse(b.job.startedAt!));
}

describe('priority (capacity 1, a backlog)', () => {
  it('starts a priority-1 job submitted last before the priority-5 jobs queued before it, each priority in submission order', async () => {
    const run = randomUUID();
    const order = await startOrder([
      { priority: 5, name: 'p5-a', labels: { run } },
      { priority: 5, name: 'p5-b', labels: { run } },
      { priority: 5, name: 'p5-c', labels: { run } },
      { priority: 1, name: 'p1-a', labels: { run } },
      { priority: 1, name: 'p1-b', labels: { run } },
    ]);
    expect(order.map(({ job }) => job.name)).toEqual(['p1-a', 'p1-b', 'p5-a', 'p5-b', 'p5-c']);
    expect(order.map(({ job }) => job.priority)).toEqual([1, 1, 5, 5, 5]);

    // Listed by priority (HodeiPriority), and Temporal shows the same Priority on the workflow.
    const listed = async (priority: number) => {
      const res = await api(`/jobs?priority=${priority}&label=run:${run}`, {}, small.info);
      expect(res.status).toBe(200);
      return ((await res.json()) as { jobs: Job[] }).jobs.map((j) => j.name).sort();
    };
    expect(await listed(1)).toEqual(['p1-a', 'p1-b']);
    expect(await listed(5)).toEqual(['p5-a', 'p5-b', 'p5-c']);
    expect(await listed(3)).toEqual([]);
    const described = JSON.parse(
      await temporalCli(small.info, ['workflow', 'describe', '-w', order[0]!.job.id, '-o', 'json']),
    ) as { workflowExecutionInfo: { priority?: { priorityKey?: number } } };
    expect(described.workflowExecutionInfo.priority?.priorityKey).toBe(1);
  });
});

describe('fair shares (capacity 1, a backlog of one key)', () => {
  it("starts the later key's jobs interleaved with the earlier key's, not after all of them", async () => {
    const order = await startOrder([
      ...Array.from({ length: 6 }, (_, i) => ({ fairnessKey: 'tenant-a', name: `a${i}` })),
      ...Array.from({ length: 3 }, (_, i) => ({ fairnessKey: 'tenant-b', name: `b${i}` })),
    ]);
    const keys = order.map(({ job }) => job.fairnessKey);
    const names = order.map(({ job }) => job.name).join(' ');
    // Interleaved: every B starts before the fourth A (all B after all A would be a0…a5 b0 b1 b2).
    const lastB = keys.lastIndexOf('tenant-b');
    const fourthA = keys.map((k, i) => (k === 'tenant-a' ? i : -1)).filter((i) => i >= 0)[3]!;
    expect(lastB, names).toBeLessThan(fourthA);
    // Each key keeps its own submission order.
    expect(names.split(' ').filter((n) => n.startsWith('a'))).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5']);
    expect(names.split(' ').filter((n) => n.startsWith('b'))).toEqual(['b0', 'b1', 'b2']);
    expect(order[0]!.job.fairnessWeight).toBe(1);
  });
});

/** This stack's containers of a job, in any state: created for it, or a pool container it claimed. */
const containersOf = (id: string) => jobContainers(small.info.instanceId, id);

describe('startAt', () => {
  it('a future time: QUEUED with the time as its reason, no container, then starts no earlier', async () => {
    // Far enough ahead that the submit and the checks below finish before it on a loaded machine.
    const startAt = new Date(Date.now() + 15_000).toISOString();
    const job = await client.submit({ script: 'echo started', startAt });
    expect(job).toMatchObject({ state: 'QUEUED', startAt, reason: `starts at ${startAt}` });
    const waiting = await client.getJob(job.id);
    expect(waiting).toMatchObject({ state: 'QUEUED', startAt, reason: `starts at ${startAt}` });
    expect(await containersOf(job.id)).toEqual([]);
    const done = await client.waitForEnd(job.id);
    expect(done.state).toBe('SUCCEEDED');
    expect(Date.parse(done.startedAt!)).toBeGreaterThanOrEqual(Date.parse(startAt));
    expect(done.reason).toBeUndefined();
    expect(await client.logs(job.id)).toContain('started');
  });

  it('a past time: starts at once', async () => {
    const startAt = new Date(Date.now() - 3_600_000).toISOString();
    const job = await client.submit({ script: 'true', startAt });
    expect(job.reason).toBeUndefined();
    // A generous bound that only catches a job left waiting (for the hour it asked to start at).
    const done = await client.waitForEnd(job.id, 60_000);
    expect(done).toMatchObject({ state: 'SUCCEEDED', startAt });
  });

  it('cancelled while waiting: CANCELLED, no container ever created', async () => {
    const since = Math.floor(Date.now() / 1000);
    const startAt = new Date(Date.now() + 600_000).toISOString();
    // With an Idempotency-Key too: a delayed start takes Temporal's id conflict policy like any.
    const key = `delayed-${randomUUID()}`;
    const submit = () =>
      api(
        '/jobs',
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify({ script: 'echo should never run', startAt }),
        },
        small.info,
      );
    const first = await submit();
    expect(first.status).toBe(201);
    const job = (await first.json()) as Job;
    expect(job.reason).toBe(`starts at ${startAt}`);
    const again = await submit();
    expect(again.status).toBe(200);
    expect(((await again.json()) as Job).id).toBe(job.id);
    expect((await client.cancel(job.id)).status).toBe(202);
    // Well before the start time: the cancel ends it at once.
    const done = await client.waitForEnd(job.id, 60_000);
    expect(done.state).toBe('CANCELLED');
    expect(done.workflow.status).toBe('CANCELLED');
    expect(await containerEvents(job.id, since, undefined, small.info.instanceId)).toEqual([]);
  });

  it.each([
    ['startAt', { startAt: 'tomorrow at noon' }],
    ['startAt', { startAt: '2026-12-01T10:00:00' }],
    ['priority', { priority: 0 }],
    ['fairnessKey', { fairnessKey: 'x'.repeat(65) }],
  ])('bad %s → 400 naming it', async (field, bad) => {
    const res = await api(
      '/jobs',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ script: 'true', ...bad }),
      },
      small.info,
    );
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { issues: Array<{ path: string }> } };
    expect(body.error.issues.map((i) => i.path)).toContain(field);
  });
});
