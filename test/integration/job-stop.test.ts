import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type RunningStack } from '../support/stack.js';
import {
  cancel,
  clientFor,
  containerEvents,
  containersOf,
  logs,
  submit,
  waitForEnd,
  waitForNoContainer,
  waitForRunningContainer,
} from '../support/api-client.js';
import { waitFor } from '../support/wait.js';
import { TERMINAL_STATES } from '../../domain/job-state.js';

describe('graceful stop', () => {
  it('kills a script that ignores SIGTERM once the grace period is over', async () => {
    const grace = 2;
    const job = await submit({
      script: "trap '' TERM\necho ready\nwhile true; do sleep 0.1; done",
      cancelGraceSeconds: grace,
    });
    await waitForRunningContainer(job.id);
    await waitFor('ready', async () => ((await logs(job.id)).includes('ready') ? true : undefined));
    const started = Date.now();
    expect((await cancel(job.id)).status).toBe(202);
    await waitForNoContainer(job.id, 30_000);
    const elapsed = (Date.now() - started) / 1000;
    // It had its grace period, then was killed: a bound that catches a hang, not a benchmark
    // (bench/cancel.ts measures grace + 1 s: p95 2.26 s for grace 2).
    expect(elapsed).toBeGreaterThanOrEqual(grace - 0.2);
    expect(elapsed).toBeLessThan(grace + 25);
    expect((await waitForEnd(job.id, 30_000)).state).toBe('CANCELLED');
  });
});

describe('a cancel storm', () => {
  it('50 jobs, each cancelled at a random moment: all end, no container left, none stuck', async () => {
    const jobs = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        submit({
          script: `echo start ${i}; sleep ${(1 + (i % 4) * 0.5).toFixed(1)}; echo end ${i}`,
          cancelGraceSeconds: 1,
        }),
      ),
    );
    await Promise.all(
      jobs.map(async (job) => {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 3000));
        const res = await cancel(job.id);
        expect([200, 202]).toContain(res.status);
      }),
    );
    const ended = await Promise.all(jobs.map((job) => waitForEnd(job.id, 120_000)));
    for (const job of ended) {
      expect(TERMINAL_STATES).toContain(job.state);
      expect(['CANCELLED', 'SUCCEEDED']).toContain(job.state);
    }
    for (const job of jobs) expect(await containersOf(job.id)).toEqual([]);
  });
});

describe('cancel while queued (capacity 1)', () => {
  let small: RunningStack;
  beforeAll(async () => {
    small = await startStack({ capacity: 1 });
  });
  afterAll(async () => {
    await small?.stop();
  });

  // The job routes of this block's own stack.
  const client = clientFor(() => small.info);
  const submitSmall = async (script: string) => (await client.submit({ script, cancelGraceSeconds: 0 })).id;
  const stateOf = async (id: string) => (await client.getJob(id)).state;

  it('never creates a container for a job cancelled while it waits for capacity', async () => {
    const since = Math.floor(Date.now() / 1000);
    const blocker = await submitSmall('sleep 60');
    await waitFor('the blocker to run', async () => ((await stateOf(blocker)) === 'RUNNING' ? true : undefined));
    const queued = await submitSmall('echo should never run');
    // It stays queued: the host is full.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await stateOf(queued)).toBe('QUEUED');

    expect((await client.cancel(queued)).status).toBe(202);
    await waitFor('the queued job to be CANCELLED', async () =>
      (await stateOf(queued)) === 'CANCELLED' ? true : undefined,
    );

    // Docker's own record: no container was ever created (or, from the warm pool, claimed: renamed)
    // for it, while the blocker's was.
    const until = Math.ceil(Date.now() / 1000) + 1;
    expect(await containerEvents(queued, since, until, small.info.instanceId)).toEqual([]);
    expect((await containerEvents(blocker, since, until, small.info.instanceId)).map((e) => e.Action)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^(create|rename)$/)]),
    );

    await client.cancel(blocker);
    await waitFor('the blocker to be CANCELLED', async () =>
      (await stateOf(blocker)) === 'CANCELLED' ? true : undefined,
    );
  });
});
