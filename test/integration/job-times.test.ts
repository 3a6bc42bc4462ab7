import { describe, expect, it } from 'vitest';
import { cancel, getJob, submit, waitForEnd } from '../support/api-client.js';
import { waitFor } from '../support/wait.js';

describe("a job's times in GET /jobs/:id", () => {
  it('a running job has its start: after its creation, not in the future, and the same on every read', async () => {
    const job = await submit({ script: 'sleep 60', cancelGraceSeconds: 0 });
    const running = await waitFor(
      'the running job to have a start',
      async () => {
        const j = await getJob(job.id);
        return j.state === 'RUNNING' && j.startedAt ? j : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const started = Date.parse(running.startedAt!);
    expect(started).toBeGreaterThanOrEqual(Date.parse(running.createdAt));
    expect(started).toBeLessThanOrEqual(Date.now());
    expect(running.finishedAt).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await getJob(job.id)).startedAt).toBe(running.startedAt);
    await cancel(job.id);
    expect((await waitForEnd(job.id)).state).toBe('CANCELLED');
  });

  it('a queued job has no start yet', async () => {
    // A job whose image is allowed but missing never starts: it stays queued/provisioning, then fails.
    const job = await submit({ script: 'true', image: 'hodei-test-missing:never' });
    const seen = await getJob(job.id);
    if (!['SUCCEEDED', 'FAILED'].includes(seen.state)) expect(seen.startedAt).toBeUndefined();
    const ended = await waitForEnd(job.id, 120_000);
    expect(ended.state).toBe('FAILED');
    expect(ended.startedAt).toBeUndefined();
  });
});
