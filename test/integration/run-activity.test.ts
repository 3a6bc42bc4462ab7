import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { HostSlots } from '../../activities/host-slots.js';
import { FAILURE_CONTAINER_LOST, LABEL_INSTANCE } from '../../domain/names.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';

// The run activity on the real Docker engine and a real store, outside any workflow: how it
// removes the container of a script that ended on its own, and what a retry of it then answers.
const docker = new Docker();
const instanceId = `run-activity-${randomUUID().slice(0, 8)}`;
let dir: string;
let logStore: SqliteLogStore;
let activities: ReturnType<typeof createActivities>;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'hodei-run-activity-'));
  logStore = SqliteLogStore.inDataDir(dir);
  activities = createActivities({
    host: { docker, id: 'test-host', taskQueue: 'unused', slots: new HostSlots(docker, instanceId, 4) },
    logStore,
    instanceId,
    provisionDeadlineMs: 60_000,
  });
});

afterAll(async () => {
  const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${instanceId}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  await logStore.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs an activity as the worker would, with an activity context of its own. */
const inActivity = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
  new MockActivityEnvironment().run(fn, ...args);
const runScript = (input: Parameters<typeof activities.runScript>[0]) => inActivity(activities.runScript, input);

async function provision(script: string) {
  const jobId = randomUUID();
  const container = await inActivity(activities.provisionContainer, {
    jobId,
    attempt: 1,
    image: 'hodei-worker:latest',
    script,
    env: {},
    resources: { memoryMb: 128, cpus: 1, pidsLimit: 64, scratchMb: 16 },
  });
  return { jobId, containerId: container.containerId };
}

const exists = (containerId: string) =>
  docker.getContainer(containerId).inspect().then(
    () => true,
    (err: { statusCode?: number }) => (err.statusCode === 404 ? false : Promise.reject(err)),
  );

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

  it('a container gone with no recorded exit is lost', async () => {
    const { jobId, containerId } = await provision('echo never');
    await docker.getContainer(containerId).remove({ force: true });
    const err = await runScript({ jobId, containerId, cancelGraceSeconds: 0, attempt: 1, removeWhenDone: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe(FAILURE_CONTAINER_LOST);
  });
});
