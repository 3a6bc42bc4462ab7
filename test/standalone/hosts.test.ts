import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIVE_STATES } from '../../activities/host-slots.js';
import { clientFor, installationJobContainers, type Job } from '../support/api-client.js';
import { ExtraEngine } from '../support/engine.js';
import { startStack, type RunningStack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';
import { WorkerProcess } from '../support/worker-process.js';

// Two hosts, each an extra Docker engine on this machine with its own worker, capacity 2 each.
const CAPACITY = 2;
let engineA: ExtraEngine;
let engineB: ExtraEngine;
let stack: RunningStack;
let workerB: WorkerProcess;

beforeAll(async () => {
  engineA = new ExtraEngine();
  engineB = new ExtraEngine();
  await Promise.all([engineA.start(), engineB.start()]);
  await Promise.all([engineA.loadImage('hodei-worker:latest'), engineB.loadImage('hodei-worker:latest')]);
  stack = await startStack({
    capacity: CAPACITY,
    env: { DOCKER_HOST: engineA.dockerHost, HODEI_HOST_LOSS_SECONDS: '5' },
  });
  // stack.env has HODEI_WORKER_METRICS_PORT=0: worker B's metrics get a port of their own.
  workerB = new WorkerProcess(
    { ...stack.env, DOCKER_HOST: engineB.dockerHost },
    path.join(stack.info.logDir, 'worker-b.log'),
  );
}, 240_000);

afterAll(async () => {
  await workerB?.stop();
  await stack?.stop();
  await Promise.all([engineA?.destroy(), engineB?.destroy()]);
});

// The job routes of this file's own stack.
const { submit, getJob, logs, waitForEnd: waitUntilEnded } = clientFor(() => stack.info);
const waitForEnd = (id: string, timeoutMs = 120_000) => waitUntilEnded(id, timeoutMs);

/** Samples how many job containers each engine holds, until stopped; returns the maxima. */
function sampleContainers(engines: ExtraEngine[]) {
  const max = engines.map(() => 0);
  let running = true;
  const loop = (async () => {
    while (running) {
      await Promise.all(
        engines.map(async (engine, i) => {
          try {
            // Capacity counts job containers created or running (claimed pool ones too); an exited
            // one waiting for removal, or an idle pool container, holds no slot.
            const list = await installationJobContainers(stack.info.instanceId, engine.docker, LIVE_STATES);
            max[i] = Math.max(max[i]!, list.length);
          } catch {
            // An engine that is down holds nothing.
          }
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  return async () => {
    running = false;
    await loop;
    return max;
  };
}

describe('capacity on one host', () => {
  it('never holds more than its capacity; the rest wait queued and start in order', async () => {
    const stopSampling = sampleContainers([engineA]);
    const jobs: Job[] = [];
    // Submitted a little apart: jobs submitted at the very same moment may start in either order.
    for (let i = 0; i < 10; i += 1) {
      jobs.push(await submit({ script: `echo job ${i}; sleep 1` }));
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const done = await Promise.all(jobs.map((j) => waitForEnd(j.id)));
    const [maxA] = await stopSampling();
    expect(done.map((j) => j.state)).toEqual(Array(10).fill('SUCCEEDED'));
    expect(maxA).toBeLessThanOrEqual(CAPACITY);
    expect(maxA).toBe(CAPACITY);
    // The promise (docs/capacity.md): in submission order, give or take jobs submitted at the same moment.
    const starts = done.map((j) => Date.parse(j.startedAt!));
    const order = starts.map((_, i) => i).sort((a, b) => starts[a]! - starts[b]!);
    order.forEach((jobIndex, position) =>
      expect(Math.abs(jobIndex - position), `start order ${order.join(',')}`).toBeLessThanOrEqual(1),
    );
  });
});

describe('the Docker engine down while a job is provisioned', () => {
  it('the job waits, says why, and runs once the engine is back', async () => {
    await engineA.stop();
    const job = await submit({ script: 'echo survived' });
    const waiting = await waitFor(
      'a provisioning failure in the job',
      async () => {
        const j = await getJob(job.id);
        return j.reason?.includes('provisioning attempt') ? j : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(['QUEUED', 'PROVISIONING']).toContain(waiting.state);
    await engineA.start();
    const done = await waitForEnd(job.id, 90_000);
    expect(done.state).toBe('SUCCEEDED');
    expect(await logs(job.id)).toBe('survived\n');
  });
});

describe('two hosts', () => {
  beforeAll(() => workerB.start(), 200_000);

  it('share the load, neither above its capacity', async () => {
    const stopSampling = sampleContainers([engineA, engineB]);
    const jobs = await Promise.all(Array.from({ length: 20 }, (_, i) => submit({ script: `echo ${i}; sleep 1` })));
    const done = await Promise.all(jobs.map((j) => waitForEnd(j.id)));
    const [maxA, maxB] = await stopSampling();
    expect(done.map((j) => j.state)).toEqual(Array(20).fill('SUCCEEDED'));
    expect(maxA).toBeLessThanOrEqual(CAPACITY);
    expect(maxB).toBeLessThanOrEqual(CAPACITY);
    expect(new Set(done.map((j) => j.host)).size).toBe(2);
  });

  /** Starts a long job, then takes away the host it runs on (worker killed, engine stopped). */
  async function loseHostOf(spec: Record<string, unknown>) {
    const job = await submit({ script: 'for i in $(seq 1 100); do echo "line $i"; sleep 0.1; done', ...spec });
    const running = await waitFor(
      'the job to run',
      async () => {
        const j = await getJob(job.id);
        return j.state === 'RUNNING' && (await logs(job.id)).includes('line 3') ? j : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const onA = running.host === (await hostIdOf(engineA));
    const lost = onA
      ? { engine: engineA, stopWorker: () => stack.stopWorker('SIGKILL'), startWorker: () => stack.startWorker() }
      : { engine: engineB, stopWorker: () => workerB.stop('SIGKILL'), startWorker: () => workerB.start() };
    await lost.stopWorker();
    await lost.engine.stop();
    return {
      job: running,
      restore: async () => {
        await lost.engine.start();
        await lost.startWorker();
      },
    };
  }

  it('a lost host: the job runs again from the start on the other host', async () => {
    const { job, restore } = await loseHostOf({});
    try {
      const done = await waitForEnd(job.id, 120_000);
      expect(done.state).toBe('SUCCEEDED');
      expect(done.attempt).toBe(2);
      expect(done.host).not.toBe(job.host);
      const lines = (await logs(job.id)).split('\n');
      const marker = lines.indexOf('[hodei] attempt 2 started');
      expect(marker).toBeGreaterThan(0);
      // The second attempt printed every line once, after the marker.
      expect(lines.slice(marker + 1).filter(Boolean)).toEqual(Array.from({ length: 100 }, (_, i) => `line ${i + 1}`));
    } finally {
      await restore();
    }
  });

  it('a lost host with no retries allowed: FAILED, "host lost"', async () => {
    const { job, restore } = await loseHostOf({ infraRetries: 0 });
    try {
      const done = await waitForEnd(job.id, 120_000);
      expect(done).toMatchObject({ state: 'FAILED', reason: 'host lost' });
    } finally {
      await restore();
    }
  });
});

async function hostIdOf(engine: ExtraEngine): Promise<string> {
  const { dockerHostId } = await import('../../worker/host.js');
  return dockerHostId(engine.docker);
}
