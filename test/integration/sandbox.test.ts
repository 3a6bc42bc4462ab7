import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Connection, WorkflowFailedError } from '@temporalio/client';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobInput } from '../../domain/job-spec.js';
import { LABEL_JOB_ID } from '../../domain/container-labels.js';
import { FAILURE_PROVISIONING_REJECTED } from '../../domain/job-failures.js';
import { RUN_JOB_WORKFLOW } from '../../domain/workflow-type.js';
import {
  cancel,
  containerEvents,
  containersOf,
  docker,
  getJob,
  logs,
  stack,
  submit,
  waitForEnd,
  waitForNoContainer,
  waitForRunningContainer,
} from '../support/api-client.js';
import { stackClient } from '../support/temporal.js';
import { waitFor } from '../support/wait.js';

// What a job cannot do to its host, on the shared stack: write to the host's disk, open
// sockets of the hypervisor's family, be blamed for the platform's slowness or for a container
// removed behind its back, or get past the operator's policy by skipping the API.

const run = promisify(execFile);

/** Waits until the job's stored output contains `text`. */
const waitForOutput = (jobId: string, text: string) =>
  waitFor(
    `"${text}" in the output of job ${jobId}`,
    async () => ((await logs(jobId)).includes(text) ? true : undefined),
    { timeoutMs: 60_000, intervalMs: 100 },
  );

describe('the host disk', () => {
  it('a job writes only to its bounded scratch mounts: the image, its home and the script are read-only, nothing reaches the host disk', async () => {
    const script = [
      'for d in / /home/hodei /hodei /etc /usr/local /var/lib; do touch "$d/x" 2>/dev/null && echo "wrote $d" || echo "refused $d"; done',
      '{ echo x >> /etc/hosts; } 2>/dev/null && echo "wrote /etc/hosts" || echo "refused /etc/hosts"',
      // The finding: 1.5 GiB written to the home directory, on the host's disk.
      'dd if=/dev/zero of=/home/hodei/fill bs=1M count=1500 2>/dev/null && echo "filled home" || echo "refused home fill"',
      'for d in /work /tmp /var/tmp; do dd if=/dev/zero of=$d/fill bs=1M count=100 2>&1 | grep -q "No space left" && echo "$d full"; done',
      'echo "HOME=$HOME PWD=$PWD"',
      'echo written',
      'sleep 300',
    ].join('\n');
    const job = await submit({ script, resources: { scratchMb: 16 }, cancelGraceSeconds: 0 });
    await waitForOutput(job.id, 'written');
    const output = await logs(job.id);
    for (const dir of ['/', '/home/hodei', '/hodei', '/etc', '/usr/local', '/var/lib', '/etc/hosts'])
      expect(output).toContain(`refused ${dir}\n`);
    expect(output).not.toContain('wrote ');
    expect(output).toContain('refused home fill\n');
    // The scratch space is where writing works, up to its size.
    for (const dir of ['/work', '/tmp', '/var/tmp']) expect(output).toContain(`${dir} full\n`);
    expect(output).toContain('HOME=/work PWD=/work\n');

    // What the container wrote to the host's disk: its writable layer, and the script's volume.
    const [listed] = await containersOf(job.id);
    // dockerode passes `size` on as the query (its types know only abortSignal).
    const inspectWithSize = docker.getContainer(listed!.Id).inspect({ size: true } as Docker.ContainerInspectOptions);
    const info = (await inspectWithSize) as Docker.ContainerInspectInfo & { SizeRw?: number };
    const volume = info.Mounts.find((m) => m.Destination === '/hodei');
    expect(volume?.Type).toBe('volume');
    expect((await docker.getVolume(volume!.Name!).inspect()).Labels).toMatchObject({ [LABEL_JOB_ID]: job.id });
    const { stdout } = await run('du', ['-sb', volume!.Source]);
    const volumeBytes = Number(stdout.split('\t')[0]);
    console.log(
      `bytes written to the host disk: writable layer ${info.SizeRw}, script volume ${volumeBytes} (script ${Buffer.byteLength(script)})`,
    );
    expect(info.SizeRw).toBe(0);
    // The directory and the script itself.
    expect(volumeBytes).toBeLessThan(Buffer.byteLength(script) + 16 * 1024);

    expect((await cancel(job.id)).status).toBe(202);
    expect((await waitForEnd(job.id)).state).toBe('CANCELLED');
    await waitForNoContainer(job.id);
    // The volume went with the container.
    await expect(docker.getVolume(volume!.Name!).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });
});

describe('sockets', () => {
  it('AF_VSOCK is denied; Unix sockets (and the socket call itself) still work', async () => {
    const job = await submit({
      script: [
        '#!/usr/bin/env python3',
        'import errno, socket',
        'try:',
        '    socket.socket(40, socket.SOCK_STREAM)', // AF_VSOCK
        '    print("vsock opened")',
        'except OSError as e:',
        '    print("vsock", errno.errorcode[e.errno])',
        'a, b = socket.socketpair(socket.AF_UNIX)',
        'a.sendall(b"ping")',
        'print("unix", b.recv(4).decode())',
        's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
        's.bind("/work/sock")',
        'print("unix bound")',
        'socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()',
        'print("inet socket")',
      ].join('\n'),
    });
    const done = await waitForEnd(job.id);
    const output = await logs(job.id);
    expect(done.state, output).toBe('SUCCEEDED');
    expect(output).toMatch(/^vsock (EPERM|EAFNOSUPPORT)$/m);
    expect(output).toContain('unix ping\nunix bound\ninet socket\n');
  });
});

describe('the platform takes the blame for its own faults', () => {
  it('a job whose container takes long to start (45,000 env vars) runs and succeeds', async () => {
    // Docker 20.10 takes seconds to start a container with tens of thousands of env vars (9 s
    // for 40,000 here), longer than the run activity's 5 s heartbeat timeout.
    const count = 45_000;
    const env = Object.fromEntries(Array.from({ length: count }, (_, i) => [`V${String(i).padStart(5, '0')}`, 'x']));
    expect(JSON.stringify({ env }).length).toBeLessThan(1024 * 1024);
    const since = Math.floor(Date.now() / 1000) - 1;
    const job = await submit({ script: '#!/bin/sh\nenv | grep -c "^V[0-9]"', env, timeoutSeconds: 600 });
    const done = await waitForEnd(job.id, 240_000);
    expect(done).toMatchObject({ state: 'SUCCEEDED', exitCode: 0, attempt: 1 });
    expect(await logs(job.id)).toBe(`${count}\n`);
    // How long the engine took to start it: from the attach made just before the start to the start.
    const events = await containerEvents(job.id, since);
    const at = (action: string) => events.find((e) => e.Action === action)?.timeNano ?? NaN;
    console.log(
      `45,000 env vars: docker start took ${((at('start') - at('attach')) / 1e9).toFixed(1)} s; one container: ${events.filter((e) => e.Action === 'create').length}`,
    );
    expect(events.filter((e) => e.Action === 'create')).toHaveLength(1);
  }, 300_000);

  it('a cancel that comes while the container is still starting (45,000 env vars) stops it: CANCELLED, nothing left', async () => {
    // The run activity heartbeats through the slow start, so the cancel reaches it there, before
    // it listens for cancels around the running script: it must act on it all the same.
    const env = Object.fromEntries(Array.from({ length: 45_000 }, (_, i) => [`V${String(i).padStart(5, '0')}`, 'x']));
    const job = await submit({ script: 'echo started; sleep 600', env, timeoutSeconds: 900, cancelGraceSeconds: 1 });
    await waitFor(
      'the job to be RUNNING',
      async () => ((await getJob(job.id)).state === 'RUNNING' ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 50 },
    );
    expect((await cancel(job.id)).status).toBe(202);
    // Far less than the script's 600 s: the cancel was not lost.
    const done = await waitForEnd(job.id, 240_000);
    expect(done.state).toBe('CANCELLED');
    await waitForNoContainer(job.id);
  }, 300_000);

  it('a container removed behind the platform`s back (docker rm -f) is lost, not an exit code 137', async () => {
    const job = await submit({ script: 'echo started; sleep 300', infraRetries: 0 });
    const container = await waitForRunningContainer(job.id);
    await waitForOutput(job.id, 'started');
    await docker.getContainer(container.Id).remove({ force: true, v: true });
    const done = await waitForEnd(job.id);
    expect(done.state).toBe('FAILED');
    expect(done.exitCode).toBeUndefined();
    expect(done.reason).toBe('host lost');
  });

  it('with infrastructure retries, a job whose container was removed runs again in a fresh one', async () => {
    const job = await submit({ script: 'echo "started in $(hostname)"; sleep 15; echo finished', infraRetries: 1 });
    const container = await waitForRunningContainer(job.id);
    await waitForOutput(job.id, 'started');
    await docker.getContainer(container.Id).remove({ force: true, v: true });
    const done = await waitForEnd(job.id);
    expect(done).toMatchObject({ state: 'SUCCEEDED', exitCode: 0, attempt: 2 });
    const lines = (await logs(job.id)).trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^started in /);
    expect(lines.slice(1, 2)).toEqual(['[hodei] attempt 2 started']);
    expect(lines[2]).toMatch(/^started in /);
    expect(lines[2]).not.toBe(lines[0]);
    expect(lines[3]).toBe('finished');
    expect(await containersOf(job.id)).toEqual([]);
  });
});

describe('the operator policy, checked by the worker too', () => {
  let connection: Connection;
  beforeAll(async () => {
    connection = await Connection.connect({ address: stack().temporalAddress });
  });
  afterAll(async () => {
    await connection?.close();
  });

  /** A job input as the API would make it, with `change` applied: started on Temporal directly. */
  async function startDirectly(change: (input: JobInput) => void) {
    const input: JobInput = {
      script: 'echo should never run',
      name: 'started on Temporal directly',
      image: 'hodei-worker:latest',
      env: {},
      secrets: {},
      timeoutSeconds: 60,
      cancelGraceSeconds: 0,
      labels: {},
      resources: { cpus: 1, memoryMb: 128, pidsLimit: 64, scratchMb: 16 },
      retries: 0,
      infraRetries: 0,
      hostLossSeconds: 60,
      cleanupDeadlineSeconds: 60,
    };
    change(input);
    const client = stackClient(connection, stack());
    const jobId = randomUUID();
    const since = Math.floor(Date.now() / 1000) - 1;
    const handle = await client.workflow.start(RUN_JOB_WORKFLOW, {
      workflowId: jobId,
      taskQueue: stack().taskQueue,
      args: [input],
    });
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    return { jobId, since, failure: (err as WorkflowFailedError).cause };
  }

  /** The failure's innermost cause: the worker's own refusal. */
  const rootCause = (failure: unknown): { type?: string; message: string } => {
    let cause = failure as { cause?: unknown; type?: string; message: string };
    while (cause.cause) cause = cause.cause as typeof cause;
    return cause;
  };

  it.each([
    [
      'an image outside the allowlist',
      (i: JobInput) => (i.image = 'busybox:latest'),
      'image busybox:latest is not allowed (HODEI_ALLOWED_IMAGES)',
    ],
    [
      'memory over the maximum (20 GB)',
      (i: JobInput) => (i.resources.memoryMb = 20_000),
      'resources.memoryMb: must be at most 8192 (HODEI_MAX_JOB_MEMORY_MB)',
    ],
    ['no process limit (0)', (i: JobInput) => (i.resources.pidsLimit = 0), 'resources.pidsLimit'],
  ])('%s: FAILED with the reason, no container created', async (_what, change, reason) => {
    const { jobId, since, failure } = await startDirectly(change);
    const cause = rootCause(failure);
    expect(cause.type).toBe(FAILURE_PROVISIONING_REJECTED);
    expect(cause.message).toContain(reason);
    const job = await getJob(jobId);
    expect(job.state).toBe('FAILED');
    expect(job.reason).toContain(reason);
    expect((await containerEvents(jobId, since)).map((e) => e.Action)).toEqual([]);
  });
});
