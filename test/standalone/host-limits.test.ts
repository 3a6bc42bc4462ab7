import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storedLineCost } from '../../activities/output-lines.js';
import { clientFor, jobContainers } from '../support/api-client.js';
import { startStack, type RunningStack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/**
 * What the host can give a job, on a stack of this file's own: a log cap of 1 MiB (so the
 * engine's own log is bounded at a few MiB), CPU requests allowed up to 256 (more than this
 * host's cores), and a worker this file kills.
 */
const LOG_CAP = 1024 * 1024;
const docker = new Docker();
let stack: RunningStack;

beforeAll(async () => {
  stack = await startStack({ env: { HODEI_LOG_MAX_BYTES: String(LOG_CAP), HODEI_MAX_JOB_CPUS: '256' } });
}, 180_000);

// stop() also removes the stack's containers, with their volumes.
afterAll(() => stack?.stop(), 60_000);

const { submit, logs, waitForEnd } = clientFor(() => stack.info);

async function containerOf(jobId: string): Promise<Docker.ContainerInfo | undefined> {
  // Labelled with the job, or a warm pool container it claimed (named after it).
  const [container] = await jobContainers(stack.info.instanceId, jobId);
  return container;
}

const runningContainer = (jobId: string) =>
  waitFor(
    `a running container for job ${jobId}`,
    async () => {
      const container = await containerOf(jobId);
      return container?.State === 'running' ? container : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 20 },
  );

/** Bytes of the engine's own log files of a container (the `local` driver's, under the data root); 0 once gone. */
async function engineLogBytes(dir: string): Promise<number> {
  try {
    const files = await readdir(dir);
    const sizes = await Promise.all(
      files.map((f) =>
        stat(path.join(dir, f)).then(
          (s) => s.size,
          () => 0,
        ),
      ),
    );
    return sizes.reduce((a, b) => a + b, 0);
  } catch {
    return 0;
  }
}

/** The stored output's lines, and the cap's marker line. */
async function storedOutput(jobId: string) {
  const lines = (await logs(jobId)).replace(/\n$/, '').split('\n');
  const markers = lines.filter((l) => l.startsWith('[hodei] log truncated'));
  expect(markers).toHaveLength(1);
  expect(lines.at(-1)).toBe(markers[0]);
  const kept = lines.slice(0, -1);
  return {
    kept,
    keptBytes: kept.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0),
    // What the kept lines cost the store: what the cap counts.
    keptCost: kept.reduce((n, l) => n + storedLineCost(l), 0),
    marker: markers[0]!,
  };
}

describe("the engine's own log of a job", () => {
  it('stays within a few times the log cap while the job prints far more; the stored log is exact', async () => {
    // 12,000,000 random bytes as 375,000 lines of 32 hex pairs (97 bytes): 36 MB of output that
    // compresses little, where the engine keeps 4 files of 1 MiB at most.
    const lineCount = 375_000;
    const lineBytes = 97;
    const job = await submit({
      script: `head -c ${lineCount * 32} /dev/urandom | od -An -tx1 -v -w32\nsleep 3`,
      timeoutSeconds: 300,
    });
    const container = await runningContainer(job.id);
    const { DockerRootDir } = (await docker.info()) as { DockerRootDir: string };
    const dir = path.join(DockerRootDir, 'containers', container.Id, 'local-logs');
    let peak = 0;
    let samples = 0;
    while ((await containerOf(job.id)) !== undefined) {
      peak = Math.max(peak, await engineLogBytes(dir));
      samples += 1;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const done = await waitForEnd(job.id);
    expect(done.state).toBe('SUCCEEDED');
    console.log(`engine log: peak ${peak} bytes over ${samples} samples, for ${lineCount * lineBytes} bytes of output`);
    expect(samples).toBeGreaterThan(10);
    // Four files of the cap's size, and a rotated one while the engine compresses it.
    expect(peak).toBeGreaterThan(LOG_CAP);
    expect(peak).toBeLessThanOrEqual(6 * LOG_CAP);

    const { kept, keptBytes, keptCost, marker } = await storedOutput(job.id);
    for (const line of kept) expect(line).toMatch(/^( [0-9a-f]{2}){32}$/);
    expect(keptCost).toBeLessThanOrEqual(LOG_CAP);
    expect(keptCost).toBeGreaterThan(LOG_CAP - storedLineCost(kept[0]!));
    expect(marker).toContain(`(${lineCount - kept.length} lines, ${lineCount * lineBytes - keptBytes} bytes dropped)`);
  }, 240_000);

  it('a worker killed mid-job: the retry re-reads the rotated engine log and stores every line once', async () => {
    // 50,000 lines of 25 bytes over about 10 s: 2.6 MB in the engine's format, so its log has
    // rotated (files of 1 MiB) when the retry reads it, yet still holds all of it (3 MiB at least).
    const count = 50_000;
    const script =
      'for i in $(seq -w 1 50000); do echo "line $i of the output"; if [ $((10#$i % 500)) -eq 0 ]; then sleep 0.1; fi; done';
    const job = await submit({ script, timeoutSeconds: 300 });
    const container = await runningContainer(job.id);
    const { DockerRootDir } = (await docker.info()) as { DockerRootDir: string };
    const dir = path.join(DockerRootDir, 'containers', container.Id, 'local-logs');
    await waitFor(
      '5,000 stored lines',
      async () => ((await logs(job.id)).split('\n').length > 5000 ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 25 },
    );
    await stack.stopWorker('SIGKILL');
    // The next worker starts once the engine has rotated its log: the retry reads rotated files.
    await waitFor(
      'the engine log to rotate',
      async () => ((await readdir(dir)).some((f) => f.startsWith('container.log.1')) ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    await stack.startWorker();
    const done = await waitForEnd(job.id, 120_000);
    expect(done).toMatchObject({ state: 'SUCCEEDED', exitCode: 0 });

    const { kept, keptBytes, keptCost, marker } = await storedOutput(job.id);
    const expected = Array.from(
      { length: kept.length },
      (_, i) => `line ${String(i + 1).padStart(5, '0')} of the output`,
    );
    expect(kept).toEqual(expected);
    const lineBytes = 25;
    expect(keptBytes).toBe(kept.length * lineBytes);
    expect(keptCost).toBeLessThanOrEqual(LOG_CAP);
    expect(keptCost).toBeGreaterThan(LOG_CAP - storedLineCost(kept[0]!));
    // Past the cap lines are only counted, and the retry counts them from what the rotated engine
    // log still holds (activities/container-spec.ts): the count is at most what was dropped, and
    // every counted line is one of 25 bytes. Exact when nothing was rotated away (the test above).
    const [, droppedLines, droppedBytes] = /\((\d+) lines, (\d+) bytes dropped\)/.exec(marker) ?? [];
    expect(Number(droppedLines), marker).toBeGreaterThan(0);
    expect(Number(droppedLines), marker).toBeLessThanOrEqual(count - kept.length);
    expect(Number(droppedBytes), marker).toBe(Number(droppedLines) * lineBytes);
  }, 240_000);
});

describe('CPU requests', () => {
  it('more CPUs than the host has: FAILED at once, naming its cores', async () => {
    const { NCPU } = (await docker.info()) as { NCPU: number };
    const job = await submit({ script: 'echo should never run', resources: { cpus: NCPU + 1 } });
    // Far less than the provisioning deadline (300 s) that an engine error retried for.
    const done = await waitForEnd(job.id, 60_000);
    expect(done.state).toBe('FAILED');
    expect(done.reason).toContain(`resources.cpus: ${NCPU + 1} is more than the ${NCPU} CPU cores of host`);
    expect(await containerOf(job.id)).toBeUndefined();
    expect(await logs(job.id)).toBe('');
  });
});
