import { describe, expect, it } from 'vitest';
import { LABEL_JOB_ID, LABEL_POOL } from '../../domain/container-labels.js';
import {
  containersOf,
  docker,
  getJob,
  idlePoolContainers,
  logs,
  stack,
  submit,
  waitForEnd,
  waitForRunningContainer,
} from '../support/api-client.js';
import { waitFor } from '../support/wait.js';

describe('running jobs end to end (real Temporal, real Docker)', () => {
  it('runs an echo job to SUCCEEDED, keeps its output and removes its container', async () => {
    const job = await submit({ script: 'echo hello from hodei' });
    expect(job.state).toBe('QUEUED');
    // Readable at once, before any worker has touched it.
    expect((await getJob(job.id)).id).toBe(job.id);

    const done = await waitForEnd(job.id);
    expect(done.state).toBe('SUCCEEDED');
    expect(done.exitCode).toBe(0);
    expect(done.workflow.status).toBe('COMPLETED');
    expect(Date.parse(done.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(done.startedAt!));
    expect(done.host).toBeTruthy();
    expect(await logs(job.id)).toBe('hello from hodei\n');
    expect(await containersOf(job.id)).toEqual([]);
  });

  it('runs a job in a warm pool container: created before its submit, named for the job', async () => {
    // The shared stack runs with HODEI_WARM_POOL=2 (global-setup.ts). Other files' jobs draw on the
    // same pool: each try submits once an idle container waits; one claim of three is enough.
    let claimed: { created: number; submittedAt: number; labels: Record<string, string> } | undefined;
    for (let tries = 0; tries < 3 && !claimed; tries++) {
      await waitFor(
        'an idle pool container',
        async () =>
          (await idlePoolContainers(stack().instanceId)).some((c) => c.State === 'running') ? true : undefined,
        { timeoutMs: 60_000, intervalMs: 50 },
      );
      const submittedAt = Date.now();
      const job = await submit({ script: 'sleep 1; echo warm' });
      const info = await docker.getContainer((await waitForRunningContainer(job.id)).Id).inspect();
      expect((await waitForEnd(job.id)).state).toBe('SUCCEEDED');
      expect(await logs(job.id)).toBe('warm\n');
      if (info.Config.Labels?.[LABEL_POOL]) {
        claimed = { created: Date.parse(info.Created), submittedAt, labels: info.Config.Labels };
        expect(info.Name).toBe(`/hodei-${job.id}-1`);
      }
    }
    expect(claimed).toBeDefined();
    expect(claimed!.created).toBeLessThan(claimed!.submittedAt);
    expect(claimed!.labels[LABEL_JOB_ID]).toBeUndefined();
  });

  it('passes env vars to the script', async () => {
    const job = await submit({ script: 'echo "FOO=$FOO"', env: { FOO: 'bar baz' } });
    expect((await waitForEnd(job.id)).state).toBe('SUCCEEDED');
    expect(await logs(job.id)).toBe('FOO=bar baz\n');
  });

  it('reports a non-zero exit as FAILED with its exit code, keeping stdout and stderr', async () => {
    // Docker copies stdout and stderr through separate pipes: lines printed in the same instant on
    // the two streams have no defined order, so the script leaves a moment between them.
    const job = await submit({ script: 'echo x; sleep 0.5; echo oops >&2; exit 3' });
    const done = await waitForEnd(job.id);
    expect(done.state).toBe('FAILED');
    expect(done.exitCode).toBe(3);
    expect(done.reason).toBe('exit code 3');
    expect(done.workflow.status).toBe('FAILED');
    expect(await logs(job.id)).toBe('x\noops\n');
    expect(await containersOf(job.id)).toEqual([]);
  });

  it('keeps every line of a multi-phase script in order and records its duration', async () => {
    const script = [
      'for i in 1 2 3 4 5; do echo "phase1 $i"; sleep 0.3; done',
      'for i in 1 2 3 4 5; do echo "phase2 $i" >&2; sleep 0.3; done',
      'for i in 1 2 3 4 5; do echo "phase3 $i"; sleep 0.4; done',
    ].join('\n');
    const job = await submit({ script });
    const done = await waitForEnd(job.id);
    expect(done.state).toBe('SUCCEEDED');
    const expected = ['phase1', 'phase2', 'phase3'].flatMap((p) => [1, 2, 3, 4, 5].map((i) => `${p} ${i}`));
    expect((await logs(job.id)).trimEnd().split('\n')).toEqual(expected);
    // It sleeps 4.5 s in all; the upper bound only catches a hang (a loaded machine is slow).
    const seconds = (Date.parse(done.finishedAt!) - Date.parse(done.startedAt!)) / 1000;
    expect(seconds).toBeGreaterThan(4.5);
    expect(seconds).toBeLessThan(60);
  });

  it('runs five 5-second jobs in parallel', async () => {
    const jobs = await Promise.all(
      [1, 2, 3, 4, 5].map((n) =>
        submit({ script: `echo start ${n}; sleep 5; echo end ${n}`, labels: { batch: 'parallel' } }),
      ),
    );
    const done = await Promise.all(jobs.map((j) => waitForEnd(j.id, 120_000)));
    expect(done.map((j) => j.state)).toEqual(Array(5).fill('SUCCEEDED'));
    // Run one after another, they would span at least the sum of their run times (25 s or more);
    // side by side they span less, however slow the machine: no bound on the clock.
    const starts = done.map((j) => Date.parse(j.startedAt!));
    const ends = done.map((j) => Date.parse(j.finishedAt!));
    const runTimes = done.reduce((sum, _, i) => sum + ends[i]! - starts[i]!, 0);
    expect(Math.max(...ends) - Math.min(...starts)).toBeLessThan(runTimes);
    for (const [i, j] of jobs.entries()) {
      expect(await logs(j.id)).toBe(`start ${i + 1}\nend ${i + 1}\n`);
      expect(await containersOf(j.id)).toEqual([]);
    }
  });

  it('honours a #! interpreter line', async () => {
    const job = await submit({ script: '#!/usr/bin/env python3\nimport sys\nprint("py", sys.version_info[0])\n' });
    expect((await waitForEnd(job.id)).state).toBe('SUCCEEDED');
    expect(await logs(job.id)).toBe('py 3\n');
  });

  it('runs the script as an unprivileged user with no network', async () => {
    const job = await submit({
      script: 'id -u; cat /sys/class/net/*/operstate 2>/dev/null | wc -l; ls /sys/class/net',
    });
    expect((await waitForEnd(job.id)).state).toBe('SUCCEEDED');
    const [uid, , interfaces] = (await logs(job.id)).trimEnd().split('\n');
    expect(uid).toBe('10001');
    expect(interfaces).toBe('lo');
  });

  it('times out: TIMED_OUT at the deadline, output kept, container gone', async () => {
    // The deadline counts from the run's start on its host: 10 s leaves a loaded machine time
    // to print the first line.
    const job = await submit({ script: 'echo before; sleep 600', timeoutSeconds: 10, cancelGraceSeconds: 1 });
    const done = await waitForEnd(job.id, 120_000);
    expect(done.state).toBe('TIMED_OUT');
    expect(done.workflow.status).toBe('FAILED');
    expect(await logs(job.id)).toBe('before\n');
    expect(await containersOf(job.id)).toEqual([]);
    // Not the 600 s of its sleep: the deadline (10 s + 1 s grace) ended it. The bound only catches
    // a hang; queueing and provisioning on a loaded machine take their time.
    const seconds = (Date.parse(done.finishedAt!) - Date.parse(done.createdAt)) / 1000;
    expect(seconds).toBeLessThan(120);
  });
});
