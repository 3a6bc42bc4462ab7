import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, clientFor, docker, type ApiTarget } from '../support/api-client.js';
import { mountExt4, mountTmpfs, type TestDisk } from '../support/disk.js';
import { containersLeft, stdoutLines } from '../support/faults.js';
import { openSse } from '../support/sse.js';
import { startStack, type RunningStack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/**
 * Fault: the log store's disk full, or turned read-only, while a job prints. Each case has a
 * stack of its own whose data dir (`HODEI_DATA_DIR`, where `logs.db` lives) is a small
 * filesystem mounted by the test. Temporal runs in memory and the installation id and codec key
 * come from the environment, so only the log store writes there.
 */
async function stackOn(disk: TestDisk): Promise<RunningStack> {
  return startStack({
    dataDir: disk.dir,
    env: { HODEI_INSTANCE_ID: `test-${randomUUID().slice(0, 8)}`, HODEI_CODEC_KEY: randomBytes(32).toString('base64') },
  });
}

/** Asks the API for health, the job and its log tail until stopped; returns every status seen. */
function pollApi(target: ApiTarget, jobId: string) {
  const statuses = new Map<string, number[]>();
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const path of ['/healthz', `/jobs/${jobId}`, `/jobs/${jobId}/logs?tail=3`]) {
        let status: number;
        try {
          const res = await api(path, { signal: AbortSignal.timeout(30_000) }, target);
          await res.body?.cancel();
          status = res.status;
        } catch {
          status = 0;
        }
        statuses.set(path, [...(statuses.get(path) ?? []), status]);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  return async () => {
    running = false;
    await loop;
    return [...statuses].map(([path, seen]) => ({ path, statuses: [...new Set(seen)] }));
  };
}

/** Whether the stored lines are `line 1 …`, `line 2 …` … with none missing: a clean prefix of the output. */
function cleanPrefix(lines: string[]): boolean {
  return lines.every((line, i) => line === `line ${i + 1}` || line.startsWith(`line ${i + 1} `));
}

/**
 * Runs `script`, applies `fault` once `faultAfterLines` lines are stored (if given), and reports
 * what the job, its log, its live stream and the API did.
 */
async function runIntoFault(
  stack: RunningStack,
  script: string,
  fault?: { afterLines: number; apply(): Promise<void> },
) {
  const { submit, waitForEnd } = clientFor(() => stack.info);
  const job = await submit({ script });
  const stopPolling = pollApi(stack.info, job.id);
  const sse = await openSse(`${stack.info.apiUrl}/jobs/${job.id}/logs/stream`, { token: stack.info.apiToken });
  try {
    if (fault) {
      await waitFor(
        `${fault.afterLines} lines stored`,
        async () => ((await stdoutLines(stack.info, job.id)).length >= fault.afterLines ? true : undefined),
        { timeoutMs: 120_000, intervalMs: 100 },
      );
      await fault.apply();
    }
    // A hang-catching bound: a retry loop or a stuck job fails here.
    const done = await waitForEnd(job.id, 180_000);
    await waitFor('the stream to end', () => sse.end(), { timeoutMs: 60_000, intervalMs: 50 });
    const stored = await stdoutLines(stack.info, job.id);
    return {
      job: done,
      stored,
      streamEnd: sse.end(),
      streamLines: sse.lines().length,
      api: await stopPolling(),
      containersLeft: await containersLeft(docker, stack.info.instanceId),
    };
  } finally {
    sse.close();
    await stopPolling();
  }
}

describe('the log store on a full disk', () => {
  let disk: TestDisk | undefined;
  let stack: RunningStack | undefined;

  beforeAll(async () => {
    disk = await mountTmpfs(8);
    stack = await stackOn(disk);
  }, 240_000);

  afterAll(async () => {
    try {
      await stack?.stop();
    } finally {
      await disk?.unmount();
    }
  }, 120_000);

  it('a job printing more than fits fails "log store full", its container removed; the API keeps answering', async () => {
    // About 30 MB of numbered, padded lines: far more than the 8 MiB disk holds.
    const total = 30_000;
    const seen = await runIntoFault(stack!, `for i in $(seq 1 ${total}); do printf 'line %d %01000d\\n' $i 0; done`);
    const report = {
      state: seen.job.state,
      reason: seen.job.reason,
      attempt: seen.job.attempt,
      exitCode: seen.job.exitCode,
      streamEnd: seen.streamEnd,
      storedCleanPrefix: cleanPrefix(seen.stored),
      storedAll: seen.stored.length === total,
      api: seen.api,
      containersLeft: seen.containersLeft,
    };
    console.info(
      `[fault: log store full] ${JSON.stringify({ ...report, linesStored: seen.stored.length, streamLines: seen.streamLines })}`,
    );
    expect(report).toEqual({
      state: 'FAILED',
      reason: expect.stringMatching(/^log store full: /),
      attempt: 1,
      exitCode: undefined,
      streamEnd: { state: 'FAILED' },
      storedCleanPrefix: true,
      storedAll: false,
      api: [
        { path: '/healthz', statuses: [200] },
        { path: `/jobs/${seen.job.id}`, statuses: [200] },
        { path: `/jobs/${seen.job.id}/logs?tail=3`, statuses: [200] },
      ],
      containersLeft: 0,
    });
  }, 420_000);
});

describe('the log store on a disk that turns read-only mid-job', () => {
  let disk: (TestDisk & { failWrites(): Promise<void> }) | undefined;
  let stack: RunningStack | undefined;

  beforeAll(async () => {
    disk = await mountExt4(64);
    stack = await stackOn(disk);
  }, 240_000);

  afterAll(async () => {
    try {
      await stack?.stop();
    } finally {
      await disk?.unmount();
    }
  }, 120_000);

  it('the job fails "log store unwritable", its container removed; the API keeps answering', async () => {
    const total = 400;
    const seen = await runIntoFault(stack!, `for i in $(seq 1 ${total}); do echo "line $i"; sleep 0.05; done`, {
      afterLines: 20,
      apply: () => disk!.failWrites(),
    });
    const report = {
      state: seen.job.state,
      reason: seen.job.reason,
      attempt: seen.job.attempt,
      exitCode: seen.job.exitCode,
      streamEnd: seen.streamEnd,
      storedCleanPrefix: cleanPrefix(seen.stored),
      storedAtLeastBeforeFault: seen.stored.length >= 20,
      storedAll: seen.stored.length === total,
      api: seen.api,
      containersLeft: seen.containersLeft,
    };
    console.info(
      `[fault: log store read-only] ${JSON.stringify({ ...report, linesStored: seen.stored.length, streamLines: seen.streamLines })}`,
    );
    expect(report).toEqual({
      state: 'FAILED',
      reason: expect.stringMatching(/^log store unwritable: /),
      attempt: 1,
      exitCode: undefined,
      streamEnd: { state: 'FAILED' },
      storedCleanPrefix: true,
      storedAtLeastBeforeFault: true,
      storedAll: false,
      api: [
        { path: '/healthz', statuses: [200] },
        { path: `/jobs/${seen.job.id}`, statuses: [200] },
        { path: `/jobs/${seen.job.id}/logs?tail=3`, statuses: [200] },
      ],
      containersLeft: 0,
    });
  }, 420_000);
});
