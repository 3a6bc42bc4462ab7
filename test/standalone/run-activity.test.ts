import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { Context } from '@temporalio/activity';
import { ActivityCancellationDetails, ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSeccompProfile } from '../../activities/container-spec.js';
import { createActivities } from '../../activities/index.js';
import { HostSlots } from '../../activities/host-slots.js';
import { runScriptInContainer } from '../../activities/run-script.js';
import type { RunHeartbeat, ScriptOutcome } from '../../activities/types.js';
import { loadConfig } from '../../domain/config.js';
import { LABEL_INSTANCE, LABEL_JOB_ID } from '../../domain/container-labels.js';
import { FAILURE_CONTAINER_LOST, FAILURE_PROVISIONING_REJECTED } from '../../domain/job-failures.js';
import type { LogStore } from '../../log-store/log-store.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';

// The run activity on the real Docker engine and a real store, outside any workflow: how it
// removes the container of a script that ended on its own, and what a retry of it then answers.
const docker = new Docker();
const instanceId = `run-activity-${randomUUID().slice(0, 8)}`;
let dir: string;
let logStore: SqliteLogStore;
let activities: ReturnType<typeof createActivities>;

/** The activities of a worker bound to `engine` (the real Docker engine, or a wrapper of it). */
const activitiesOn = (engine: Docker, settings: Record<string, string> = {}) =>
  createActivities({
    host: { docker: engine, id: 'test-host', taskQueue: 'unused', slots: new HostSlots(engine, instanceId, 4) },
    logStore,
    instanceId,
    provisionDeadlineMs: 60_000,
    limits: loadConfig({ HODEI_DATA_DIR: dir, HODEI_INSTANCE_ID: instanceId, ...settings }),
    seccompProfile: loadSeccompProfile(),
  });

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'hodei-run-activity-'));
  logStore = SqliteLogStore.inDataDir(dir);
  activities = activitiesOn(docker);
});

afterAll(async () => {
  const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${instanceId}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  await logStore.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs an activity as the worker would, with an activity context of its own. */
const inActivity = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
  new MockActivityEnvironment().run(fn, ...args);
const runScript = (input: Parameters<typeof activities.runScript>[0]) => inActivity(activities.runScript, input);

const provisionInput = (script: string) => ({
  jobId: randomUUID(),
  attempt: 1,
  image: 'hodei-worker:latest',
  script,
  env: {},
  resources: { memoryMb: 128, cpus: 1, pidsLimit: 64, scratchMb: 16 },
});

async function provision(script: string) {
  const input = provisionInput(script);
  const container = await inActivity(activities.provisionContainer, input);
  return { jobId: input.jobId, containerId: container.containerId };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const exists = (containerId: string) =>
  docker
    .getContainer(containerId)
    .inspect()
    .then(
      () => true,
      (err: { statusCode?: number }) => (err.statusCode === 404 ? false : Promise.reject(err)),
    );

describe('provisionContainer', () => {
  it('a request the engine refuses (4xx) fails at once, not retried until the provisioning deadline', async () => {
    // The engine itself refuses the container: far more CPUs than any host has.
    const refusing = Object.assign(Object.create(docker) as Docker, {
      createContainer: (options: Docker.ContainerCreateOptions) =>
        docker.createContainer({ ...options, HostConfig: { ...options.HostConfig, NanoCpus: 100_000 * 1e9 } }),
    });
    const input = provisionInput('echo never');
    const err = await inActivity(activitiesOn(refusing).provisionContainer, input).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: FAILURE_PROVISIONING_REJECTED, nonRetryable: true });
    expect((err as Error).message).toMatch(/^the Docker engine refused the job's container: Range of CPUs/);
    expect(await docker.listContainers({ all: true, filters: { label: [`${LABEL_JOB_ID}=${input.jobId}`] } })).toEqual(
      [],
    );
  });

  it("an image's own volumes are scratch space (tmpfs of the job's size), not directories on the host's disk", async () => {
    // The worker image with a VOLUME of its own.
    const base = await docker.createContainer({
      Image: 'hodei-worker:latest',
      User: 'root',
      Cmd: ['true'],
      Labels: { [LABEL_INSTANCE]: instanceId },
    });
    const tag = `volume-${randomUUID().slice(0, 8)}`;
    await base.commit({ repo: 'hodei-test-image', tag, changes: ['VOLUME ["/data"]'] });
    await base.remove();
    const image = `hodei-test-image:${tag}`;
    try {
      const acts = activitiesOn(docker, { HODEI_ALLOWED_IMAGES: 'hodei-test-image:*' });
      const input = {
        ...provisionInput(
          'df -k --output=fstype,size /data | tail -1 | tr -s " "\ndd if=/dev/zero of=/data/fill bs=1M count=64 2>&1 | grep -o "No space left on device"',
        ),
        image,
      };
      const { containerId } = await inActivity(acts.provisionContainer, input);
      const outcome = await inActivity(acts.runScript, {
        jobId: input.jobId,
        containerId,
        cancelGraceSeconds: 0,
        attempt: 1,
        removeWhenDone: true,
      });
      expect(outcome).toMatchObject({ exitCode: 0, removed: true });
      expect((await logStore.read(input.jobId)).map((l) => l.line)).toEqual([
        `tmpfs ${16 * 1024}`,
        'No space left on device',
      ]);
    } finally {
      await docker.getImage(image).remove();
    }
  });
});

describe('runScript', () => {
  it('with removeWhenDone: records the exit, removes the container, and a retry after that answers the recorded exit', async () => {
    const { jobId, containerId } = await provision('echo done; exit 3');
    const first = await runScript({ jobId, containerId, cancelGraceSeconds: 0, attempt: 1, removeWhenDone: true });
    expect(first).toMatchObject({ exitCode: 3, oomKilled: false, lastSeq: 1, removed: true });
    expect(await exists(containerId)).toBe(false);
    expect((await logStore.read(jobId)).map((l) => l.line)).toEqual(['done']);

    // The worker died between the removal and its report: the retried activity finds no container.
    const retried = await runScript({ jobId, containerId, cancelGraceSeconds: 0, attempt: 1, removeWhenDone: true });
    expect(retried).toEqual(first);
    expect((await logStore.read(jobId)).map((l) => l.line)).toEqual(['done']);
  });

  it('without removeWhenDone (a workflow from before it): leaves the container to the cleanup activity', async () => {
    const { jobId, containerId } = await provision('echo kept');
    const outcome = await runScript({ jobId, containerId, cancelGraceSeconds: 0, attempt: 1 });
    expect(outcome.exitCode).toBe(0);
    expect(outcome.removed).toBeUndefined();
    expect(await exists(containerId)).toBe(true);
    await inActivity(activities.removeContainer, { containerId });
    expect(await exists(containerId)).toBe(false);
  });

  it("told to stop by its host (the job's cancel): stops the running script at once, ends cancelled, leaves the container to the cleanup", async () => {
    const { jobId, containerId } = await provision('echo started; sleep 300');
    const running = runScript({ jobId, containerId, cancelGraceSeconds: 0, attempt: 1, removeWhenDone: true });
    const deadline = Date.now() + 30_000;
    while ((await logStore.read(jobId)).length === 0 && Date.now() < deadline) await sleep(20);
    // No heartbeat brings a cancel here (no server): the stop comes from the host alone.
    await inActivity(activities.stopRun, { containerId });
    const outcome = await running;
    expect(outcome.cancelled).toBe(true);
    // SIGTERM (docker-init passes it on), or SIGKILL after the grace period: the stop's exit.
    expect([137, 143]).toContain(outcome.exitCode);
    expect(outcome.removed).toBeUndefined();
    const state = (await docker.getContainer(containerId).inspect()).State;
    expect(state.Running).toBe(false);
    expect((await logStore.read(jobId)).map((l) => l.line)).toEqual(['started']);
    await inActivity(activities.removeContainer, { containerId });
  });

  it('told to stop before its run began here: never starts the script', async () => {
    const { jobId, containerId } = await provision('echo never printed');
    await inActivity(activities.stopRun, { containerId });
    const outcome = await runScript({ jobId, containerId, cancelGraceSeconds: 0, attempt: 1, removeWhenDone: true });
    expect(outcome).toMatchObject({ cancelled: true });
    const state = (await docker.getContainer(containerId).inspect()).State;
    expect(state.Status).toBe('created');
    expect(await logStore.read(jobId)).toEqual([]);
    await inActivity(activities.removeContainer, { containerId });
  });

  it('a container gone with no recorded exit is lost', async () => {
    const { jobId, containerId } = await provision('echo never');
    await docker.getContainer(containerId).remove({ force: true, v: true });
    const err = await runScript({ jobId, containerId, cancelGraceSeconds: 0, attempt: 1, removeWhenDone: true }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe(FAILURE_CONTAINER_LOST);
  });
});

/**
 * `count` numbered lines on each stream, printed at once by two processes, in `rounds` bursts.
 * Bursts of thousands of lines: the attach and the log then interleave the streams differently
 * at most places (Docker copies each stream separately for each).
 */
const busyScript = (count: number, rounds: number, pauseSeconds = 0.1) => {
  const per = count / rounds;
  const loop = (prefix: string, redirect: string) =>
    `(for r in $(seq 0 ${rounds - 1}); do seq -f '${prefix} %g' $((r * ${per} + 1)) $(((r + 1) * ${per})) ${redirect}; sleep ${pauseSeconds}; done) &`;
  return `${loop('o', '')}\n${loop('e', '>&2')}\nwait\nexit 5`;
};

/** Runs the run activity's body in an activity context of its own. */
function runBody(
  env: MockActivityEnvironment,
  jobId: string,
  container: Docker.Container,
  store: LogStore = logStore,
): Promise<ScriptOutcome> {
  return env.run(() =>
    runScriptInContainer(Context.current(), {
      container,
      logStore: store,
      jobId,
      attempt: 1,
      cancelGraceSeconds: 0,
      heartbeatIntervalMs: 5,
      logMaxBytes: 100 * 1024 * 1024,
    }),
  ) as Promise<ScriptOutcome>;
}

/** The job's stored log holds each stream's `count` lines exactly once, in order, as seqs 1…2·count. */
async function expectEveryLineOnce(jobId: string, count: number) {
  const rows = await logStore.read(jobId);
  expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
  const numbers = (prefix: string) => Array.from({ length: count }, (_, i) => `${prefix} ${i + 1}`);
  expect(rows.filter((r) => r.stream === 'stdout').map((r) => r.line)).toEqual(numbers('o'));
  expect(rows.filter((r) => r.stream === 'stderr').map((r) => r.line)).toEqual(numbers('e'));
  expect(rows).toHaveLength(2 * count);
}

/** A container whose attach stream breaks after `bytes` bytes: closes, fails, or ends early. */
function attachBreaksAfter(
  container: Docker.Container,
  bytes: number,
  how: 'close' | 'error' | 'end',
): Docker.Container {
  const broken = Object.create(container) as Docker.Container;
  broken.attach = (async (opts: Docker.ContainerAttachOptions) => {
    const real = (await container.attach(opts)) as unknown as Readable;
    const relay = new PassThrough();
    let seen = 0;
    real.on('data', (chunk: Buffer) => {
      if (relay.destroyed) return;
      seen += chunk.length;
      if (seen <= bytes) {
        relay.write(chunk);
        return;
      }
      relay.write(chunk.subarray(0, chunk.length - (seen - bytes)));
      real.destroy();
      if (how === 'end') relay.end();
      else relay.destroy(how === 'error' ? new Error('socket hang up') : undefined);
    });
    real.on('end', () => relay.end());
    return relay;
  }) as unknown as Docker.Container['attach'];
  return broken;
}

/** A provisioned job container for `script`. */
async function provisionBusy(script: string) {
  const { jobId, containerId } = await provision(script);
  return { jobId, container: docker.getContainer(containerId) };
}

// How the run activity reads a container's output: the live attach, and the ways back to the
// log endpoint (an attach that breaks, a run that died with lines stored past its last
// heartbeat, a worker shutting down), while stdout and stderr are both busy, so that the two
// reads interleave them differently.
describe('reading a container output while stdout and stderr are both busy', () => {
  it('through the attach: every line of each stream once, the exit code', async () => {
    const { jobId, container } = await provisionBusy(busyScript(100_000, 5));
    const outcome = await runBody(new MockActivityEnvironment(), jobId, container);
    expect(outcome.exitCode).toBe(5);
    expect(outcome.lastSeq).toBe(200_000);
    await expectEveryLineOnce(jobId, 100_000);
  });

  for (const how of ['close', 'error', 'end'] as const) {
    it(`an attach that breaks (${how}) mid-output: the rest comes from the log, nothing lost or doubled`, async () => {
      // An attach that ends while the container runs on is taken for broken once the container
      // has not stopped for a while: this one runs for seconds more.
      const { jobId, container } = await provisionBusy(busyScript(100_000, 5, how === 'end' ? 1 : 0.1));
      const outcome = await runBody(new MockActivityEnvironment(), jobId, attachBreaksAfter(container, 100_000, how));
      expect(outcome.exitCode).toBe(5);
      await expectEveryLineOnce(jobId, 100_000);
    });
  }

  it('a run that died with lines stored past its last heartbeat: the retry reads the log and numbers each line once', async () => {
    const { jobId, container } = await provisionBusy(busyScript(100_000, 5));
    const first = new MockActivityEnvironment();
    const beats: RunHeartbeat[] = [];
    first.on('heartbeat', (d: RunHeartbeat) => beats.push(d));
    // The first run's store fails at its 5th write, like a worker dying there; the server got
    // the heartbeats sent before its 4th write only, so the store is ahead of their checkpoint.
    let writes = 0;
    let serverGot: RunHeartbeat | undefined;
    const dying: LogStore = Object.assign(Object.create(logStore) as LogStore, {
      append: async (id: string, lines: Parameters<LogStore['append']>[1]) => {
        writes += 1;
        if (writes === 4) serverGot = beats.at(-1);
        if (writes === 5) throw new Error('worker died');
        return logStore.append(id, lines);
      },
    });
    await expect(runBody(first, jobId, container, dying)).rejects.toThrow('worker died');
    expect(await logStore.lastSeq(jobId)).toBeGreaterThan(serverGot!.output!.seq);

    const outcome = await runBody(new MockActivityEnvironment({ heartbeatDetails: serverGot }), jobId, container);
    expect(outcome.exitCode).toBe(5);
    await expectEveryLineOnce(jobId, 100_000);
  });

  it('a worker shutting down lets go of the container; the retry goes on from its checkpoint', async () => {
    // Pauses long enough for the container to be still running when the worker lets go.
    const { jobId, container } = await provisionBusy(busyScript(100_000, 5, 2));
    const first = new MockActivityEnvironment();
    const beats: RunHeartbeat[] = [];
    first.on('heartbeat', (d: RunHeartbeat) => beats.push(d));
    const running = runBody(first, jobId, container);
    while ((await logStore.lastSeq(jobId)) < 10_000) await new Promise((resolve) => setTimeout(resolve, 5));
    first.cancel('WORKER_SHUTDOWN', new ActivityCancellationDetails({ workerShutdown: true }));
    await expect(running).rejects.toBeDefined();
    expect((await container.inspect()).State.Running).toBe(true);

    const outcome = await runBody(new MockActivityEnvironment({ heartbeatDetails: beats.at(-1) }), jobId, container);
    expect(outcome.exitCode).toBe(5);
    await expectEveryLineOnce(jobId, 100_000);
  });
});
