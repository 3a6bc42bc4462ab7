import { stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientFor } from '../support/api-client.js';
import { openSse } from '../support/sse.js';
import { startSupervisor, type PartName, type Supervisor } from '../support/supervisor.js';
import { waitFor } from '../support/wait.js';

/** Whether a process with this PID exists (signal 0 checks without sending anything). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start (scripts/supervise.ts)', () => {
  let sup: Supervisor;
  let token = '';
  beforeAll(async () => {
    sup = await startSupervisor();
    token = await sup.token();
  }, 600_000);
  afterAll(async () => {
    await sup?.destroy();
  }, 120_000);

  const client = clientFor(() => ({ apiUrl: sup.apiUrl, apiToken: token }));

  /** Kills a part with -9 (by the PID the supervisor reported) and waits for it to be started again. */
  async function killAndWaitForRestart(part: PartName): Promise<number> {
    const pid = sup.pidOf(part);
    process.kill(pid, 'SIGKILL');
    await waitFor(
      `the supervisor to restart the ${part}`,
      () => {
        const restarted = sup.records.some(
          (r) => r.name === 'hodei-start' && r.part === part && r.childPid === pid && r.msg?.includes('restarting'),
        );
        return restarted && sup.pidOf(part) !== pid ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    return sup.pidOf(part);
  }

  it('keeps its data dir to this user (0700, files 0600) and prints the CLI flags that reach it', async () => {
    expect((await stat(sup.dataDir)).mode & 0o777).toBe(0o700);
    for (const file of ['api-token', 'codec-key', 'instance-id', 'logs.db', 'temporal.db', 'temporal.log']) {
      const mode = (await stat(path.join(sup.dataDir, file))).mode & 0o777;
      expect(mode & 0o077, `${file} is ${mode.toString(8)}`).toBe(0);
    }
    // Not the CLI's default address: the banner names the flag.
    expect(sup.stderr()).toContain(`--address ${sup.temporalAddress}`);
    expect(sup.stderr()).not.toContain('with no flags');
  });

  it('restarts a worker killed with -9, and the job it was running completes', async () => {
    const job = await client.submit({ script: 'echo start; sleep 4; echo done' });
    await client.waitForState(job.id, ['RUNNING'], 120_000);
    await waitFor('the job to print start', async () =>
      (await client.logs(job.id)).includes('start') ? true : undefined,
    );
    const newPid = await killAndWaitForRestart('worker');
    expect(alive(newPid)).toBe(true);
    expect((await client.waitForEnd(job.id, 120_000)).state).toBe('SUCCEEDED');
    expect(await client.logs(job.id)).toBe('start\ndone\n');
  });

  it('restarts the API and Temporal (on the same data dir) when they die, and jobs run on', async () => {
    const before = await client.submit({ script: 'echo before' });
    expect((await client.waitForEnd(before.id, 120_000)).state).toBe('SUCCEEDED');

    await killAndWaitForRestart('api');
    await waitFor(
      'the restarted API to be ready',
      async () => ((await fetch(`${sup.apiUrl}/readyz`)).ok ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 250 },
    );

    await killAndWaitForRestart('temporal');
    // The job from before the restart is still there (same database), and a new one runs.
    await waitFor(
      'the API to reach the restarted Temporal',
      async () => ((await client.getJob(before.id)).state === 'SUCCEEDED' ? true : undefined),
      {
        timeoutMs: 120_000,
        intervalMs: 250,
      },
    );
    const after = await client.submit({ script: 'echo after' });
    expect((await client.waitForEnd(after.id, 120_000)).state).toBe('SUCCEEDED');
    expect(await client.logs(after.id)).toBe('after\n');
  });

  it('stops within seconds on SIGINT with a live log stream open, which gets a final shutdown event', async () => {
    const job = await client.submit({ script: 'while true; do echo tick; sleep 0.2; done' });
    await client.waitForState(job.id, ['RUNNING'], 120_000);
    const sse = await openSse(`${sup.apiUrl}/jobs/${job.id}/logs/stream`, { token });
    expect(sse.status).toBe(200);
    await sse.waitForLines(1);
    const pids = (['temporal', 'worker', 'api'] as const).map((part) => sup.pidOf(part));

    const started = Date.now();
    sup.process.kill('SIGINT');
    const { code } = await sup.exited;
    const elapsed = Date.now() - started;
    // A bound that catches a hang (it takes about 2 s here; the supervisor's own limits add up
    // to 20 s), not a benchmark.
    expect(elapsed).toBeLessThan(30_000);
    expect(code).toBe(0);
    await sse.closed;
    expect(sse.events[sse.events.length - 1]?.event).toBe('shutdown');
    expect(sse.end()).toBeUndefined();
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
  });
});
