import Docker from 'dockerode';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isConflict, isNotFound } from '../../activities/container-ops.js';
import { loadSeccompProfile } from '../../activities/container-spec.js';
import { attachAndRelease, forgetClaim, WarmPool } from '../../activities/warm-pool.js';
import { LABEL_INSTANCE, LABEL_POOL } from '../../domain/container-labels.js';
import type { ProvisionInput } from '../../activities/types.js';
import { clientFor, idlePoolContainers, jobContainers } from '../support/api-client.js';
import { lineReport, numberedScript, stdoutLines } from '../support/faults.js';
import { startStack, type RunningStack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/**
 * Warm containers (activities/warm-pool.ts) on a stack of this file's own, whose default image is
 * a tag of this file's (so rebuilding it touches no other test): the pool is used, a rebuilt image
 * drains it, a pool container killed while idle is never handed out, a worker killed -9 leaves
 * nothing behind, a worker killed -9 mid-job reattaches to its claimed container losing no line;
 * and in-process: a cancel before the release, HODEI_WARM_POOL=0, a release made only once.
 */
const docker = new Docker();
const TAG = `hodei-pool-test-${process.pid}:latest`;
const RESOURCES = { cpus: 1, memoryMb: 256, pidsLimit: 128, scratchMb: 64 };
let stack: RunningStack;
let instanceId: string;

beforeAll(async () => {
  await docker.getImage('hodei-worker:latest').tag({ repo: TAG.split(':')[0]!, tag: 'latest' });
  stack = await startStack({
    env: {
      HODEI_WORKER_IMAGE: TAG,
      HODEI_ALLOWED_IMAGES: TAG,
      HODEI_WARM_POOL: '2',
      HODEI_JOB_CPUS: String(RESOURCES.cpus),
      HODEI_JOB_MEMORY_MB: String(RESOURCES.memoryMb),
      HODEI_JOB_PIDS_LIMIT: String(RESOURCES.pidsLimit),
      HODEI_JOB_SCRATCH_MB: String(RESOURCES.scratchMb),
    },
  });
  instanceId = stack.info.instanceId;
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await docker
    .getImage(TAG)
    .remove()
    .catch(() => undefined);
}, 60_000);

const { submit, logs, waitForEnd, waitForState, cancel } = clientFor(() => stack.info);

/** The stack's idle pool containers (running or not). */
const idlePool = () => idlePoolContainers(instanceId);

const fullPool = () =>
  waitFor(
    'two idle pool containers',
    async () => {
      const idle = (await idlePool()).filter((c) => c.State === 'running');
      return idle.length === 2 ? idle : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );

const runningContainerOf = (jobId: string) =>
  waitFor(
    `job ${jobId}'s container`,
    async () => (await jobContainers(instanceId, jobId)).find((c) => c.State === 'running'),
    { timeoutMs: 60_000, intervalMs: 20 },
  );

const lines = async (jobId: string) => (await logs(jobId)).split('\n').filter((l) => l !== '');

describe('warm pool', () => {
  it('hands a job a container started before its submit, with its env and masked secrets, then refills', async () => {
    const idle = await fullPool();
    const submittedAt = Date.now();
    const job = await submit({
      script: 'echo "hello $GREETING"; echo "secret=$TOKEN"; sleep 1; echo done',
      env: { GREETING: "it's warm" },
      secrets: { TOKEN: 'sup3r-s3cret-value' },
    });
    const container = await runningContainerOf(job.id);
    expect(idle.map((c) => c.Id)).toContain(container.Id);
    expect(container.Created * 1000).toBeLessThan(submittedAt);
    // Named for the job at its claim (a listing during the rename can show both names: wait for it).
    await waitFor('the claimed container to carry the job’s name', async () =>
      (await docker.getContainer(container.Id).inspect()).Name === `/hodei-${job.id}-1` ? true : undefined,
    );
    const info = await docker.getContainer(container.Id).inspect();
    expect(JSON.stringify(info.Config.Env)).not.toContain('sup3r');
    expect(info.HostConfig.Memory).toBe(RESOURCES.memoryMb * 1024 * 1024);
    const ended = await waitForEnd(job.id);
    expect(ended.state).toBe('SUCCEEDED');
    expect(await lines(job.id)).toEqual(["hello it's warm", 'secret=***', 'done']);
    expect(Date.parse(ended.startedAt!)).toBeGreaterThanOrEqual(submittedAt - 1000);
    await fullPool();
  }, 90_000);

  it('applies a job’s own limits to a claimed container', async () => {
    await fullPool();
    const job = await submit({ script: 'sleep 3; echo ok', resources: { memoryMb: 300, cpus: 0.5 } });
    // RUNNING once provisioned: the claim's rename comes before its update of the limits.
    await waitForState(job.id, ['RUNNING']);
    const container = await runningContainerOf(job.id);
    const info = await docker.getContainer(container.Id).inspect();
    expect(info.Config.Labels?.[LABEL_POOL]).toBeDefined();
    expect(info.HostConfig.Memory).toBe(300 * 1024 * 1024);
    expect(info.HostConfig.NanoCpus).toBe(5e8);
    expect((await waitForEnd(job.id)).state).toBe('SUCCEEDED');
  }, 90_000);

  it('never hands out a pool container that died while idle', async () => {
    const [victim] = await fullPool();
    await docker.getContainer(victim!.Id).kill();
    const jobs = await Promise.all([submit({ script: 'echo a' }), submit({ script: 'echo b' })]);
    for (const job of jobs) expect((await waitForEnd(job.id)).state).toBe('SUCCEEDED');
    expect((await lines(jobs[0]!.id)).concat(await lines(jobs[1]!.id))).toEqual(['a', 'b']);
    await waitFor('the dead pool container to be removed', async () =>
      (await idlePool()).some((c) => c.Id === victim!.Id) ? undefined : true,
    );
  }, 90_000);

  it('drains and refills the pool when its image is rebuilt', async () => {
    const old = await fullPool();
    const rebuilt = await rebuildImage(TAG);
    expect(old.every((c) => c.ImageID !== rebuilt)).toBe(true);
    const job = await submit({ script: 'sleep 1; echo new' });
    const container = await runningContainerOf(job.id);
    expect(container.ImageID).toBe(rebuilt);
    expect((await waitForEnd(job.id)).state).toBe('SUCCEEDED');
    const fresh = await waitFor(
      'a pool of the rebuilt image',
      async () => {
        const idle = (await idlePool()).filter((c) => c.State === 'running');
        return idle.length === 2 && idle.every((c) => c.ImageID === rebuilt) ? idle : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    expect(fresh.map((c) => c.Id)).not.toContain(old[0]!.Id);
  }, 90_000);

  it('a worker killed -9 leaves idle containers its restart reaps, and no slot behind', async () => {
    const before = await fullPool();
    await stack.stopWorker('SIGKILL');
    await stack.startWorker();
    await waitFor(
      'the dead worker’s idle containers to be reaped',
      async () => {
        const ids = (await idlePool()).map((c) => c.Id);
        return before.some((c) => ids.includes(c.Id)) ? undefined : true;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    // The slots count no dead worker's container: jobs run at once.
    const jobs = await Promise.all(Array.from({ length: 3 }, (_, i) => submit({ script: `echo ${i}` })));
    for (const job of jobs) expect((await waitForEnd(job.id)).state).toBe('SUCCEEDED');
    expect((await idlePool()).length).toBeLessThanOrEqual(2);
  }, 120_000);

  it('a worker killed -9 mid-job: the next attempt reads its claimed container’s log, no line lost or doubled', async () => {
    const LINES = 80;
    await fullPool();
    const job = await submit({ script: numberedScript(LINES, 0.1), timeoutSeconds: 300 });
    const container = await runningContainerOf(job.id);
    expect(container.Labels[LABEL_POOL]).toBeTruthy();
    await waitFor(
      '10 lines stored',
      async () => ((await stdoutLines(stack.info, job.id)).length >= 10 ? true : undefined),
      {
        timeoutMs: 60_000,
        intervalMs: 50,
      },
    );
    await stack.stopWorker('SIGKILL');
    await stack.startWorker();
    expect((await waitForEnd(job.id, 180_000)).state).toBe('SUCCEEDED');
    const report = lineReport(await stdoutLines(stack.info, job.id), LINES);
    expect(report).toEqual({ lost: 0, duplicated: 0, inOrder: true, foreign: 0 });
  }, 240_000);

  it(
    'a cancel before the release never runs the script; HODEI_WARM_POOL=0 claims nothing',
    () =>
      withInProcessPools(async (pool, off) => {
        const input = poolJob('pool-cancel', 'echo ran');
        expect(await off.claim(input)).toBeUndefined();
        const claimed = await waitFor('a claim', () => pool.claim(input), { intervalMs: 100 });
        const aborted = new AbortController();
        aborted.abort(new Error('cancelled'));
        const info = await claimed.inspect();
        await expect(attachAndRelease(claimed, info.Config.Labels, aborted.signal)).rejects.toThrow('cancelled');
        // The launcher still waits: stopped now (as a cancel's cleanup does), the script never ran.
        await claimed.stop({ t: 1 });
        const output = await claimed.logs({ stdout: true, stderr: true });
        expect(output.toString()).toBe('');
      }),
    60_000,
  );

  it(
    'releases a claimed container once: a later try, in this process or another, reads its log',
    () =>
      withInProcessPools(async (pool) => {
        const claimed = await waitFor(
          'a claim',
          () => pool.claim(poolJob('pool-release', 'echo first; sleep 10; echo last')),
          {
            intervalMs: 100,
          },
        );
        const { Config } = await claimed.inspect();
        const live = new AbortController().signal;
        // As a worker that did not claim it (restarted) sees it: only the engine's process list says.
        forgetClaim(claimed.id);
        const attached = await attachAndRelease(claimed, Config.Labels, live);
        expect(attached).toBeDefined();
        attached!.on('data', () => undefined);
        await waitFor('the script to print', async () =>
          (await claimed.logs({ stdout: true })).toString().includes('first') ? true : undefined,
        );
        // docker-init, the container's first process, still shows the launcher's command line.
        const top = (await claimed.top()) as { Processes: string[][] };
        expect(top.Processes.some((row) => row.join(' ').includes('hodei-launcher'))).toBe(true);
        expect(await attachAndRelease(claimed, Config.Labels, live)).toBeUndefined();
        forgetClaim(claimed.id);
        expect(await attachAndRelease(claimed, Config.Labels, live)).toBeUndefined();
        attached!.destroy();
        await claimed.wait();
        expect((await claimed.logs({ stdout: true })).toString()).toMatch(/first[\s\S]*last/);
      }),
    60_000,
  );

  it('a job cancelled at once ends CANCELLED with its claimed container gone', async () => {
    await fullPool();
    const job = await submit({ script: 'sleep 30' });
    await cancel(job.id);
    expect((await waitForEnd(job.id)).state).toBe('CANCELLED');
    await waitFor('its container to be gone', async () =>
      (await jobContainers(instanceId, job.id)).length === 0 ? true : undefined,
    );
  }, 60_000);
});

/**
 * Runs `body` with two pools in this process, of size 1 and 0, under an instance of their own (the
 * stack's reaper never sees their containers); then stops them and removes every container of
 * that instance, whatever the body did.
 */
async function withInProcessPools(body: (pool: WarmPool, off: WarmPool) => Promise<void>): Promise<void> {
  const containerOptions = {
    instanceId: `${instanceId}-inproc`,
    seccompProfile: loadSeccompProfile(),
    logMaxBytes: 1024 * 1024,
  };
  const pool = new WarmPool({ docker, size: 1, image: TAG, resources: RESOURCES, containerOptions }).start();
  const off = new WarmPool({ docker, size: 0, image: TAG, resources: RESOURCES, containerOptions }).start();
  try {
    await body(pool, off);
  } finally {
    await pool.stop();
    await off.stop();
    const left = await docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_INSTANCE}=${containerOptions.instanceId}`] },
    });
    // One the pool's stop is removing already answers 409; one gone meanwhile, 404.
    await Promise.all(
      left.map((c) =>
        docker
          .getContainer(c.Id)
          .remove({ force: true, v: true })
          .catch((err: unknown) => {
            if (!isConflict(err) && !isNotFound(err)) throw err;
          }),
      ),
    );
  }
}

/** A job of the pool's image and shape, for an in-process claim. */
const poolJob = (name: string, script: string): ProvisionInput => ({
  jobId: `${name}-${process.pid}`,
  attempt: 1,
  image: TAG,
  script,
  env: {},
  resources: RESOURCES,
});

/** A copy of the image with another id (a label added), tagged as it: a rebuild. Returns the new id. */
async function rebuildImage(tag: string): Promise<string> {
  const context = pack();
  context.entry({ name: 'Dockerfile' }, `FROM ${tag}\nLABEL hodei.test.rebuilt="${Date.now()}"\n`);
  context.finalize();
  const stream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, { t: tag });
  await new Promise((resolve, reject) =>
    docker.modem.followProgress(stream, (err, res) => (err ? reject(err) : resolve(res))),
  );
  return (await docker.getImage(tag).inspect()).Id;
}
