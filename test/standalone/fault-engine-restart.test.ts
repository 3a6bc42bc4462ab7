import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TERMINAL_STATES } from '../../domain/job-state.js';
import { clientFor, type Job } from '../support/api-client.js';
import { ExtraEngine } from '../support/engine.js';
import { containersLeft, lineReport, numberedScript, stdoutLines } from '../support/faults.js';
import { startStack, type RunningStack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/**
 * Fault: the Docker engine restarted (stopped, which stops its containers, then started) while
 * jobs run. A Docker engine of this file's own, with the stack's worker on it (`DOCKER_HOST`).
 */
let engine: ExtraEngine;
let stack: RunningStack;

beforeAll(async () => {
  engine = new ExtraEngine();
  await engine.start();
  await engine.loadImage('hodei-worker:latest');
  stack = await startStack({ capacity: 2, env: { DOCKER_HOST: engine.dockerHost } });
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  await engine?.destroy();
}, 120_000);

const { submit, getJob, waitForEnd } = clientFor(() => stack.info);

const LINES = 80;
const MARKER = /^\[hodei\] attempt (\d+) started$/;

/** The stdout lines of the job's last attempt (after its attempt marker, if any). */
async function lastAttemptLines(job: Job): Promise<string[]> {
  const res = await fetch(`${stack.info.apiUrl}/jobs/${job.id}/logs`, {
    headers: { authorization: `Bearer ${stack.info.apiToken}` },
  });
  const lines = (await res.text()).replace(/\n$/, '').split('\n');
  const markers = lines.flatMap((l, i) => (MARKER.test(l) ? [i] : []));
  return lines.slice((markers.at(-1) ?? -1) + 1);
}

describe('the Docker engine restarted while jobs run', () => {
  it('running jobs are retried per infraRetries or fail "host lost", never blaming the script; queued ones run; none stuck, no container left', async () => {
    // Two run (capacity 2), one waits; the platform may run the first again, not the second.
    // 20 s each: both still print when the engine stops, though the second may start seconds later.
    const retried = await submit({
      script: numberedScript(LINES, 0.25),
      infraRetries: 1,
      name: 'engine-restart-retried',
    });
    const notRetried = await submit({
      script: numberedScript(LINES, 0.25),
      infraRetries: 0,
      name: 'engine-restart-not-retried',
    });
    await waitFor(
      'both to print',
      async () => {
        const counts = await Promise.all(
          [retried, notRetried].map(async (j) => (await stdoutLines(stack.info, j.id)).length),
        );
        if (counts.some((n) => n >= LINES)) throw new Error(`a job ended before the engine stopped: ${counts}`);
        return counts.every((n) => n >= 5) ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 100 },
    );
    const queued = await submit({ script: numberedScript(10, 0.1), name: 'engine-restart-queued' });
    expect((await getJob(queued.id)).state).toBe('QUEUED');

    await engine.stop();
    await engine.start();

    // A hang-catching bound: every job terminal.
    const jobs = [retried, notRetried, queued];
    const done = await Promise.all(jobs.map((j) => waitForEnd(j.id, 300_000)));
    expect(done.every((j) => TERMINAL_STATES.includes(j.state))).toBe(true);
    const [retriedDone, notRetriedDone, queuedDone] = done;
    const retriedLines = lineReport(await lastAttemptLines(retriedDone!), LINES);
    const queuedLines = lineReport(await stdoutLines(stack.info, queued.id), 10);
    const seen = {
      retried: {
        state: retriedDone!.state,
        reason: retriedDone!.reason,
        attempt: retriedDone!.attempt,
        exitCode: retriedDone!.exitCode,
      },
      notRetried: { state: notRetriedDone!.state, reason: notRetriedDone!.reason },
      queued: { state: queuedDone!.state, reason: queuedDone!.reason },
      completed: done.filter((j) => j.state === 'SUCCEEDED').length,
      linesLost: retriedLines.lost + queuedLines.lost,
      linesDuplicated: retriedLines.duplicated + queuedLines.duplicated,
      containersLeft: await containersLeft(engine.docker, stack.info.instanceId),
    };
    console.info(`[fault: engine restart] ${JSON.stringify(seen)}`);
    expect(seen).toEqual({
      retried: { state: 'SUCCEEDED', reason: undefined, attempt: 2, exitCode: 0 },
      notRetried: { state: 'FAILED', reason: 'host lost' },
      queued: { state: 'SUCCEEDED', reason: undefined },
      completed: 2,
      linesLost: 0,
      linesDuplicated: 0,
      containersLeft: 0,
    });
  }, 480_000);
});
