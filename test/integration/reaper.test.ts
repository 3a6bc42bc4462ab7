import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LABEL_INSTANCE, LABEL_JOB_ID, LABEL_MANAGED } from '../../domain/container-labels.js';
import { jobContainers } from '../support/api-client.js';
import { sweepOrphans } from '../../worker/reaper.js';
import {
  clientFor as apiClientFor,
  docker,
  stack,
  submit,
  waitForEnd,
  waitForNoContainer,
  waitForRunningContainer,
} from '../support/api-client.js';
import { startStack, TEMPORAL_BIN, type RunningStack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);

const logger = pino({ level: 'silent' });
const instanceId = `reaper-${randomUUID().slice(0, 8)}`;
const connections: Connection[] = [];

afterEach(async () => {
  await Promise.all(connections.splice(0).map((c) => c.close()));
  const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${instanceId}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
});

/** A container labelled like a job's, by default for a job id no workflow has. */
async function orphanContainer(jobId = `missing-${randomUUID()}`): Promise<string> {
  const container = await docker.createContainer({
    Image: 'hodei-worker:latest',
    Cmd: ['sleep', '60'],
    Labels: { [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: instanceId, [LABEL_JOB_ID]: jobId },
    HostConfig: { NetworkMode: 'none' },
  });
  return container.id;
}

/** A workflow on a task queue no worker serves: it stays running until the test terminates it. */
async function startWorkflow(client: Client): Promise<WorkflowHandle> {
  return client.workflow.start('reaperTestWorkflow', {
    taskQueue: `reaper-test-${randomUUID()}`,
    workflowId: `reaper-${randomUUID()}`,
  });
}

async function clientFor(address: string): Promise<Client> {
  const connection = await Connection.connect({ address, connectTimeout: 2000 });
  connections.push(connection);
  return new Client({ connection, namespace: stack().namespace });
}

describe('sweepOrphans', () => {
  it("removes this installation's unused script volumes, never one a container uses or another installation's", async () => {
    const labels = (instance: string) => ({ [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: instance });
    const unused = await docker.createVolume({ Name: `hodei-test-${randomUUID()}`, Labels: labels(instanceId) });
    const foreign = await docker.createVolume({
      Name: `hodei-test-${randomUUID()}`,
      Labels: labels(`other-${randomUUID().slice(0, 8)}`),
    });
    // A running workflow's container, with its volume: both stay.
    const client = await clientFor(stack().temporalAddress);
    const workflow = await startWorkflow(client);
    const inUse = `hodei-test-${randomUUID()}`;
    const container = await docker.createContainer({
      Image: 'hodei-worker:latest',
      Cmd: ['sleep', '60'],
      Labels: { ...labels(instanceId), [LABEL_JOB_ID]: workflow.workflowId },
      HostConfig: {
        NetworkMode: 'none',
        Mounts: [
          { Type: 'volume', Source: inUse, Target: '/hodei', VolumeOptions: { Labels: labels(instanceId) } as never },
        ],
      },
    });
    try {
      await sweepOrphans({ docker, client, instanceId, graceMs: 0, logger });
      const names = new Set(((await docker.listVolumes()).Volumes ?? []).map((v) => v.Name));
      expect(names.has(unused.name), 'unused volume removed').toBe(false);
      expect(names.has(inUse), 'volume in use kept').toBe(true);
      expect(names.has(foreign.name), "another installation's volume kept").toBe(true);
    } finally {
      await workflow.terminate('test: done');
      await container.remove({ force: true, v: true });
      await docker.getVolume(foreign.name).remove();
    }
  });

  it('removes a container whose workflow Temporal reports as not found', async () => {
    const id = await orphanContainer();
    const result = await sweepOrphans({
      docker,
      client: await clientFor(stack().temporalAddress),
      instanceId,
      graceMs: 0,
      logger,
    });
    expect(result).toEqual({ removed: [id], complete: true });
  });

  it('leaves a young container alone (it may be provisioning)', async () => {
    await orphanContainer();
    const result = await sweepOrphans({
      docker,
      client: await clientFor(stack().temporalAddress),
      instanceId,
      graceMs: 60_000,
      logger,
    });
    expect(result.removed).toEqual([]);
  });

  it('removes a young container at once when its workflow is closed (no creation grace)', async () => {
    const client = await clientFor(stack().temporalAddress);
    const workflow = await startWorkflow(client);
    await workflow.terminate('test: the job was terminated');
    const id = await orphanContainer(workflow.workflowId);
    // A minute's grace, and the container a second old: the closed workflow is enough.
    const result = await sweepOrphans({ docker, client, instanceId, graceMs: 60_000, logger });
    expect(result).toEqual({ removed: [id], complete: true });
  });

  it('keeps the container of a running workflow, however old', async () => {
    const client = await clientFor(stack().temporalAddress);
    const workflow = await startWorkflow(client);
    try {
      const id = await orphanContainer(workflow.workflowId);
      const result = await sweepOrphans({ docker, client, instanceId, graceMs: 0, logger });
      expect(result).toEqual({ removed: [], complete: true });
      const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${instanceId}`] } });
      expect(left.map((c) => c.Id)).toEqual([id]);
    } finally {
      await workflow.terminate('test: done');
    }
  });

  it('removes nothing when Temporal cannot be reached', async () => {
    await orphanContainer();
    // A Temporal that cannot be reached: a port this test holds (bound to port 0, so no one else
    // can have it) whose every connection is closed at once, as an unreachable server's would be.
    const unreachable = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => unreachable.listen(0, '127.0.0.1', resolve));
    const connection = Connection.lazy({ address: `127.0.0.1:${(unreachable.address() as AddressInfo).port}` });
    connections.push(connection);
    const client = new Client({ connection, namespace: 'default' });
    const result = await sweepOrphans({ docker, client, instanceId, graceMs: 0, logger }).finally(
      () => new Promise((resolve) => unreachable.close(resolve)),
    );
    expect(result).toEqual({ removed: [], complete: false });
    expect(
      await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${instanceId}`] } }),
    ).toHaveLength(1);
  });
});

describe('the reaper in the worker (shared stack)', () => {
  it('removes the container of a terminated workflow (which ran no cleanup)', async () => {
    const job = await submit({ script: 'while true; do echo tick; sleep 0.1; done' });
    await waitForRunningContainer(job.id);
    const { temporalAddress, namespace } = stack();
    await run(TEMPORAL_BIN, [
      'workflow',
      'terminate',
      '--address',
      temporalAddress,
      '--namespace',
      namespace,
      '--workflow-id',
      job.id,
      '--reason',
      'test: terminate',
    ]);
    const ended = await waitForEnd(job.id, 30_000);
    expect(ended).toMatchObject({ state: 'FAILED', reason: 'workflow terminated' });
    // Reaper period 2 s and grace 3 s in the test stack.
    await waitForNoContainer(job.id, 30_000);
    // It says so in the worker's metrics, once its sweep has gone through every container.
    const removed = await waitFor(
      'the reaper to count the removal',
      async () => {
        const metrics = await (await fetch(stack().workerMetricsUrl)).text();
        const count = Number(/^hodei_reaper_removed_containers_total (\d+)/m.exec(metrics)?.[1]);
        return count >= 1 ? count : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(removed).toBeGreaterThanOrEqual(1);
  });
});

describe('the reaper in the worker, its creation grace at the default (60 s)', () => {
  let small: RunningStack;
  beforeAll(async () => {
    // The reaper's grace at its default (60 s), its interval short.
    small = await startStack({
      capacity: 1,
      env: { HODEI_REAPER_GRACE_SECONDS: '60', HODEI_REAPER_INTERVAL_SECONDS: '2' },
    });
  });
  afterAll(async () => {
    await small?.stop();
  });

  // The job routes of this block's own stack.
  const client = apiClientFor(() => small.info);
  const submitSmall = async (script: string) => (await client.submit({ script, cancelGraceSeconds: 0 })).id;
  const stateOf = async (id: string) => (await client.getJob(id)).state;

  it("the reaper removes a terminated job's container at its next sweep, not after the creation grace", async () => {
    const job = await submitSmall('while true; do echo tick; sleep 0.1; done');
    await waitFor('the job to run', async () => ((await stateOf(job)) === 'RUNNING' ? true : undefined));
    const { instanceId, temporalAddress, namespace } = small.info;
    // Labelled with the job, or a warm pool container it claimed (named after it).
    const [container] = await jobContainers(instanceId, job);
    expect(container).toBeDefined();
    await run(TEMPORAL_BIN, [
      'workflow',
      'terminate',
      '--address',
      temporalAddress,
      '--namespace',
      namespace,
      '--workflow-id',
      job,
      '--reason',
      'test: terminate',
    ]);
    await waitFor(
      "the terminated job's container to be gone",
      async () => ((await jobContainers(instanceId, job)).length === 0 ? true : undefined),
      { timeoutMs: 50_000, intervalMs: 50 },
    );
    // Gone before it was 60 s old (the grace), so the grace did not apply: a sweep every 2 s
    // removed it (bench/orphans.ts measures the time with the default settings).
    expect(Date.now() - container!.Created * 1000).toBeLessThan(60_000);
  });
});
