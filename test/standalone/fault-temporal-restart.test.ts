import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientFor, docker, type Job } from '../support/api-client.js';
import { containersLeft, lineReport, numberedScript, stdoutLines } from '../support/faults.js';
import { startStack, type RunningStack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/**
 * Fault: the Temporal dev server killed (-9) mid-job and started again on the same data dir, as
 * when `npm start` is restarted. A stack of this file's own, with Temporal on disk and capacity 1,
 * so one job runs while the others wait queued.
 */
let stack: RunningStack;

beforeAll(async () => {
  stack = await startStack({ capacity: 1, persistent: true });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const { submit, getJob, waitForEnd } = clientFor(() => stack.info);

const JOBS = 3;
const LINES = 150;

describe('the Temporal dev server killed mid-job and started again on its data', () => {
  it('keeps every job: the running one completes, the queued ones run, each line stored once, no container left', async () => {
    const jobs: Job[] = [];
    for (let i = 0; i < JOBS; i += 1)
      jobs.push(await submit({ script: numberedScript(LINES, 0.1), name: `temporal-restart-${i}` }));

    // One job is printing; the others wait for the one slot.
    const states = await waitFor(
      'one job printing, the others queued',
      async () => {
        const now = await Promise.all(jobs.map((j) => getJob(j.id)));
        const running = now.filter((j) => j.state === 'RUNNING');
        if (running.length !== 1 || (await stdoutLines(stack.info, running[0]!.id)).length < 5) return undefined;
        return now.map((j) => j.state);
      },
      { timeoutMs: 120_000, intervalMs: 100 },
    );
    expect(states.filter((s) => s === 'QUEUED')).toHaveLength(JOBS - 1);

    await stack.killTemporal('SIGKILL');
    // The script goes on printing while Temporal is away, longer than the run activity's heartbeat
    // timeout (5 s): once back, the server gives up on the attempt it last heard of and starts another.
    await sleep(8000);
    await stack.startTemporal();

    const done = await Promise.all(jobs.map((j) => waitForEnd(j.id, 240_000)));
    const reports = await Promise.all(jobs.map(async (j) => lineReport(await stdoutLines(stack.info, j.id), LINES)));
    const seen = {
      states: done.map((j) => `${j.state}${j.reason ? ` (${j.reason})` : ''}`),
      completed: done.filter((j) => j.state === 'SUCCEEDED').length,
      linesLost: reports.reduce((sum, r) => sum + r.lost, 0),
      linesDuplicated: reports.reduce((sum, r) => sum + r.duplicated, 0),
      inOrder: reports.every((r) => r.inOrder && r.foreign === 0),
      containersLeft: await containersLeft(docker, stack.info.instanceId),
    };
    console.info(`[fault: temporal restart] ${JSON.stringify(seen)}`);
    expect(seen).toEqual({
      states: jobs.map(() => 'SUCCEEDED'),
      completed: JOBS,
      linesLost: 0,
      linesDuplicated: 0,
      inOrder: true,
      containersLeft: 0,
    });
  }, 420_000);
});
