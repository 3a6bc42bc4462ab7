import { randomUUID } from 'node:crypto';
import { Connection, type Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientFor, docker } from '../support/api-client.js';
import { startStack, type RunningStack } from '../support/stack.js';
import { stackClient } from '../support/temporal.js';
import { waitFor } from '../support/wait.js';
import { LABEL_INSTANCE, LABEL_JOB_ID } from '../../domain/container-labels.js';
import { concurrencyWorkflowId, PERMIT_GRANTED_SIGNAL, type ConcurrencyKeyMemo } from '../../domain/concurrency.js';
import type { JobSpec } from '../../api-client/index.js';

// Concurrency keys end to end: real Temporal, real Docker, the stack's own worker (killed with
// SIGKILL below). What ran when is read from the engine's container start/die events.
let stack: RunningStack;
let connection: Connection;
let temporal: Client;
const api = clientFor(() => stack.info);

interface ContainerEvent {
  action: 'start' | 'die';
  jobId: string;
}
const events: ContainerEvent[] = [];
let stopEvents: () => void = () => undefined;

beforeAll(async () => {
  // What ran when comes from each container's start and die: a warm pool container starts before
  // its job does (its script waits for the release), so this stack creates one per job.
  stack = await startStack({ capacity: 6, env: { HODEI_WARM_POOL: '0' } });
  connection = await Connection.connect({ address: stack.info.temporalAddress });
  temporal = stackClient(connection, stack.info);
  const stream = (await docker.getEvents({
    filters: { type: ['container'], event: ['start', 'die'], label: [`${LABEL_INSTANCE}=${stack.info.instanceId}`] },
  })) as NodeJS.ReadableStream & { destroy(): void };
  let buffered = '';
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (!line) continue;
      const e = JSON.parse(line) as { Action: string; Actor: { Attributes: Record<string, string> } };
      const jobId = e.Actor.Attributes[LABEL_JOB_ID];
      if (jobId && (e.Action === 'start' || e.Action === 'die')) events.push({ action: e.Action, jobId });
    }
  });
  stopEvents = () => stream.destroy();
}, 180_000);

afterAll(async () => {
  stopEvents();
  await connection?.close();
  await stack?.stop();
});

/** The most of `jobIds`' containers running at once, and the order they first started in, from the engine's events. */
function fromEvents(jobIds: string[]): { maxRunning: number; starts: string[] } {
  const mine = new Set(jobIds);
  let running = 0;
  let maxRunning = 0;
  const starts: string[] = [];
  for (const e of events) {
    if (!mine.has(e.jobId)) continue;
    running += e.action === 'start' ? 1 : -1;
    maxRunning = Math.max(maxRunning, running);
    if (e.action === 'start' && !starts.includes(e.jobId)) starts.push(e.jobId);
  }
  return { maxRunning, starts };
}

const keyed = (key: string, limit: number, script: string, extra: Partial<JobSpec> = {}): JobSpec => ({
  script,
  cancelGraceSeconds: 0,
  concurrency: { key, limit },
  ...extra,
});

/** Submits in order, each after the previous one's workflow exists (the API answers once it started). */
async function submitAll(specs: JobSpec[]): Promise<string[]> {
  const ids: string[] = [];
  for (const spec of specs) ids.push((await api.submit(spec)).id);
  return ids;
}

/**
 * Submits in order, each once its permit request is in the key's line (the key's memo lists it):
 * requests of jobs submitted back to back can reach the key in either order.
 */
async function submitQueued(key: string, specs: JobSpec[]): Promise<string[]> {
  const ids: string[] = [];
  for (const spec of specs) {
    const id = (await api.submit(spec)).id;
    await waitFor(
      `job ${id} in key ${key}'s line`,
      async () => {
        const { memo } = await temporal.workflow.getHandle(concurrencyWorkflowId(key)).describe();
        return (memo as ConcurrencyKeyMemo | undefined)?.waiting?.includes(id) ? true : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 100 },
    );
    ids.push(id);
  }
  return ids;
}

/** When the job's workflow received its permit, from its history. */
async function grantedAt(jobId: string): Promise<number> {
  const history = await temporal.workflow.getHandle(jobId).fetchHistory();
  const granted = history.events!.find(
    (e) => e.workflowExecutionSignaledEventAttributes?.signalName === PERMIT_GRANTED_SIGNAL,
  );
  if (!granted) throw new Error(`job ${jobId} was never granted a permit`);
  return Number(granted.eventTime!.seconds) * 1000 + Math.floor((granted.eventTime!.nanos ?? 0) / 1e6);
}

const stateOf = async (id: string) => (await api.getJob(id)).state;

describe('concurrency keys', () => {
  it('limit 1 and limit 2: never more at once, in submission order, jobs without the key not held up', async () => {
    const one = `deploy-${randomUUID().slice(0, 8)}`;
    const two = `batch-${randomUUID().slice(0, 8)}`;
    // The first job of each key holds its permits (long enough for the rest to queue on a loaded
    // machine); the rest then queue behind it, each in the line before the next is submitted.
    const [head1] = await submitAll([keyed(one, 1, 'sleep 30')]);
    const heads2 = await submitAll([keyed(two, 2, 'sleep 20'), keyed(two, 2, 'sleep 20')]);
    await api.waitForState(head1!, ['RUNNING']);
    await Promise.all(heads2.map((id) => api.waitForState(id, ['RUNNING'])));
    const rest1 = await submitQueued(
      one,
      [1, 2, 3].map(() => keyed(one, 1, 'sleep 1')),
    );
    const rest2 = await submitQueued(
      two,
      [1, 2, 3, 4].map(() => keyed(two, 2, 'sleep 1')),
    );

    // Its workflow records why it waits in its first task, a moment after the submit answered.
    const waiting = await waitFor(
      'the first waiting job to say why',
      async () => {
        const job = await api.getJob(rest1[0]!);
        return job.reason?.startsWith('waiting for concurrency key') ? job : undefined;
      },
      { timeoutMs: 90_000 },
    );
    expect(waiting.state).toBe('QUEUED');
    expect(waiting.concurrency).toEqual({ key: one, limit: 1 });
    expect(waiting.reason).toBe(`waiting for concurrency key ${one} (1 of limit 1 running)`);

    // Not blocked: a job without a key runs to its end while the keyed ones still wait.
    const free = (await api.submit({ script: 'echo free' })).id;
    expect((await api.waitForEnd(free)).state).toBe('SUCCEEDED');
    expect(await stateOf(rest1[2]!)).toBe('QUEUED');

    const all1 = [head1!, ...rest1];
    const all2 = [...heads2, ...rest2];
    for (const id of [...all1, ...all2]) expect((await api.waitForEnd(id, 120_000)).state).toBe('SUCCEEDED');

    const seen1 = fromEvents(all1);
    expect(seen1.maxRunning).toBe(1);
    expect(seen1.starts).toEqual(all1);
    const seen2 = fromEvents(all2);
    expect(seen2.maxRunning).toBe(2);
    expect(seen2.starts.sort()).toEqual([...all2].sort());
    // With two permits, two grants can land together and their containers start in either
    // order: the order kept is the grants', in the jobs' histories.
    const grants = await Promise.all(rest2.map(grantedAt));
    expect([...grants].sort((a, b) => a - b)).toEqual(grants);
    expect(fromEvents([free, rest1[2]!]).starts[0]).toBe(free);
  });

  it('permits come back after a cancel and a timeout; a job cancelled while waiting leaves the line', async () => {
    const c = `cancel-${randomUUID().slice(0, 8)}`;
    const t = `timeout-${randomUUID().slice(0, 8)}`;
    // The holders hold their keys before the others ask: the permit requests of jobs submitted
    // together can reach the key in either order (docs/capacity.md), and once one did.
    const [running, timesOut] = await submitAll([
      keyed(c, 1, 'sleep 300'),
      keyed(t, 1, 'sleep 300', { timeoutSeconds: 2 }),
    ]);
    await api.waitForState(running!, ['RUNNING']);
    await api.waitForState(timesOut!, ['RUNNING', 'TIMED_OUT']);
    const [leaves, nextC, nextT] = await submitAll([
      keyed(c, 1, 'echo never'),
      keyed(c, 1, 'echo after cancel'),
      keyed(t, 1, 'echo after timeout'),
    ]);
    await waitFor(
      'the waiting job to say why',
      async () => ((await api.getJob(leaves!)).reason?.includes(`concurrency key ${c}`) ? true : undefined),
      { timeoutMs: 90_000 },
    );
    expect((await api.cancel(leaves!)).status).toBe(202);
    expect((await api.waitForEnd(leaves!)).state).toBe('CANCELLED');
    expect(await stateOf(nextC!)).toBe('QUEUED');
    expect((await api.cancel(running!)).status).toBe(202);

    expect((await api.waitForEnd(running!)).state).toBe('CANCELLED');
    expect((await api.waitForEnd(nextC!)).state).toBe('SUCCEEDED');
    expect((await api.waitForEnd(timesOut!)).state).toBe('TIMED_OUT');
    expect((await api.waitForEnd(nextT!)).state).toBe('SUCCEEDED');
    // The cancelled waiter never had a container.
    expect(fromEvents([leaves!]).starts).toEqual([]);
    expect(fromEvents([running!, nextC!]).maxRunning).toBe(1);
    expect(fromEvents([timesOut!, nextT!]).maxRunning).toBe(1);
  });

  it('the permit comes back after the worker is killed with SIGKILL while a keyed job runs', async () => {
    const k = `crash-${randomUUID().slice(0, 8)}`;
    // The holder takes the key before the other is submitted (two permit requests at once may
    // reach the key in either order), and the other waits for it when the worker dies.
    const [holder] = await submitAll([keyed(k, 1, 'sleep 10; echo done')]);
    await api.waitForState(holder!, ['RUNNING']);
    const [next] = await submitAll([keyed(k, 1, 'echo next')]);
    await waitFor(
      'the second job to wait for the key',
      async () => ((await api.getJob(next!)).reason?.includes(`concurrency key ${k}`) ? true : undefined),
      { timeoutMs: 90_000 },
    );
    expect(await stateOf(holder!), 'the holder still runs when its worker is killed').toBe('RUNNING');
    await stack.stopWorker('SIGKILL');
    await stack.startWorker();
    expect((await api.waitForEnd(holder!, 120_000)).state).toBe('SUCCEEDED');
    expect((await api.waitForEnd(next!, 120_000)).state).toBe('SUCCEEDED');
    expect(fromEvents([holder!, next!]).starts).toEqual([holder, next]);
    expect(
      (await containersLeft()).filter((id) => id === holder || id === next),
      'no container left behind',
    ).toEqual([]);
  });
});

async function containersLeft(): Promise<string[]> {
  const left = await docker.listContainers({
    all: true,
    filters: { label: [`${LABEL_INSTANCE}=${stack.info.instanceId}`] },
  });
  return left.map((c) => c.Labels[LABEL_JOB_ID] ?? '');
}
