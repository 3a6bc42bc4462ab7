import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientFor, installationJobContainers } from '../support/api-client.js';
import { startStack, type RunningStack } from '../support/stack.js';

/**
 * The test stack's restarts, which the fault tests build on: a stack of this file's own with
 * Temporal on disk (`persistent`), its dev server and its API killed with -9 and started again
 * on the ports they had.
 */
let stack: RunningStack;

beforeAll(async () => {
  stack = await startStack({ capacity: 2, persistent: true });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const { submit, getJob, logs, waitForState, waitForEnd } = clientFor(() => stack.info);

describe('the test stack restarts its parts on the ports they had', () => {
  it('keeps a job across a kill -9 of Temporal and a start on the same data', async () => {
    const { temporalAddress } = stack.info;
    const job = await submit({ script: 'echo before; sleep 10; echo after' });
    await waitForState(job.id, ['RUNNING'], 120_000);
    await stack.killTemporal('SIGKILL');
    await stack.startTemporal();
    expect(stack.info.temporalAddress).toBe(temporalAddress);

    const done = await waitForEnd(job.id, 180_000);
    expect(done.state).toBe('SUCCEEDED');
    expect(await logs(job.id)).toBe('before\nafter\n');
    // No job container left (the worker's idle pool containers are none).
    expect(await installationJobContainers(stack.info.instanceId)).toEqual([]);
  }, 300_000);

  it('answers at the same URL after a kill -9 of the API and a start', async () => {
    const { apiUrl } = stack.info;
    const job = await submit({ script: 'echo kept' });
    await stack.killApi('SIGKILL');
    await expect(fetch(`${apiUrl}/healthz`)).rejects.toThrow();
    await stack.startApi();
    expect(stack.info.apiUrl).toBe(apiUrl);

    expect((await fetch(`${apiUrl}/healthz`)).status).toBe(200);
    expect((await waitForEnd(job.id, 120_000)).state).toBe('SUCCEEDED');
    expect((await getJob(job.id)).id).toBe(job.id);
    expect(await logs(job.id)).toBe('kept\n');
  }, 240_000);
});
