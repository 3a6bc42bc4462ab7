import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TEMPORAL_BIN } from '../support/stack.js';
import {
  api,
  cancel,
  containersOf,
  logs,
  stack,
  submit,
  waitForEnd,
  waitForNoContainer,
  waitForRunningContainer,
} from '../support/api-client.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);
const TICKER = 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.1; done';

/** `temporal workflow <command>` on the job's workflow, on the test stack's server; its stdout. */
async function temporalWorkflow(command: string, workflowId: string, ...extra: string[]): Promise<string> {
  const { temporalAddress, namespace } = stack();
  const args = ['--address', temporalAddress, '--namespace', namespace, '--workflow-id', workflowId];
  return (await run(TEMPORAL_BIN, ['workflow', command, ...args, ...extra])).stdout;
}

/** Waits until the job has printed a few lines, so it is truly running. */
async function waitForOutput(id: string) {
  await waitFor('output', async () => ((await logs(id)).split('\n').length > 3 ? true : undefined));
}

/** After CANCELLED, the log must not grow: the script is really gone. */
async function expectLogFrozen(id: string) {
  const before = await logs(id);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  expect(await logs(id)).toBe(before);
}

describe('cancellation stops the container for real', () => {
  it('through the API', async () => {
    const job = await submit({ script: TICKER, cancelGraceSeconds: 2 });
    await waitForRunningContainer(job.id);
    await waitForOutput(job.id);

    const res = await cancel(job.id);
    expect(res.status).toBe(202);
    expect(((await res.json()) as { state: string }).state).toBe('CANCELLING');
    // A generous bound that only catches a hang (a loaded machine takes seconds for the chain of
    // workflow tasks, heartbeat and engine calls); bench/ holds the tight figure.
    expect(await waitForNoContainer(job.id, 30_000)).toBeLessThan(30_000);

    const done = await waitForEnd(job.id, 30_000);
    expect(done.state).toBe('CANCELLED');
    expect(done.workflow.status).toBe('CANCELLED');
    await expectLogFrozen(job.id);

    // The host was told (stopRun) and stopped the run itself: the run activity completed, marked
    // cancelled, rather than being cancelled at a heartbeat.
    const events = (
      JSON.parse(await temporalWorkflow('show', job.id, '--output', 'json')) as {
        events: Array<{
          eventId: string;
          activityTaskScheduledEventAttributes?: { activityType: { name: string } };
          activityTaskCompletedEventAttributes?: { scheduledEventId: string };
          activityTaskCanceledEventAttributes?: unknown;
        }>;
      }
    ).events;
    const scheduled = new Map(
      events.flatMap((e) =>
        e.activityTaskScheduledEventAttributes
          ? [[e.eventId, e.activityTaskScheduledEventAttributes.activityType.name]]
          : [],
      ),
    );
    expect([...scheduled.values()]).toEqual(['provisionContainer', 'runScript', 'stopRun', 'removeContainer']);
    const completed = events.flatMap((e) =>
      e.activityTaskCompletedEventAttributes
        ? [scheduled.get(e.activityTaskCompletedEventAttributes.scheduledEventId)]
        : [],
    );
    expect(completed).toContain('runScript');
    expect(completed).toContain('stopRun');
    expect(events.filter((e) => e.activityTaskCanceledEventAttributes)).toEqual([]);

    // Idempotent, and a clear answer once it has ended.
    const again = await cancel(job.id);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ state: 'CANCELLED', message: expect.stringContaining('already ended') });
  });

  it('through `temporal workflow cancel`', async () => {
    const job = await submit({ script: TICKER, cancelGraceSeconds: 2 });
    await waitForRunningContainer(job.id);
    await waitForOutput(job.id);

    await temporalWorkflow('cancel', job.id);
    expect(await waitForNoContainer(job.id, 30_000)).toBeLessThan(30_000);

    const done = await waitForEnd(job.id, 30_000);
    expect(done.state).toBe('CANCELLED');
    await expectLogFrozen(job.id);
    const description = JSON.parse(await temporalWorkflow('describe', job.id, '--output', 'json')) as {
      workflowExecutionInfo: { status: string };
    };
    expect(description.workflowExecutionInfo.status).toMatch(/CANCELED/);
  });

  it('delivers SIGTERM so the script can clean up, and its trap output is kept', async () => {
    const job = await submit({
      script: 'trap \'echo "caught TERM"; exit 0\' TERM\necho ready\nwhile true; do sleep 0.1; done',
      cancelGraceSeconds: 5,
    });
    await waitForRunningContainer(job.id);
    await waitFor('ready', async () => ((await logs(job.id)).includes('ready') ? true : undefined));
    expect((await cancel(job.id)).status).toBe(202);
    expect((await waitForEnd(job.id, 30_000)).state).toBe('CANCELLED');
    expect(await logs(job.id)).toContain('caught TERM');
    expect(await containersOf(job.id)).toEqual([]);
  });

  it('answers 404 for an unknown job', async () => {
    expect((await cancel('no-such-job')).status).toBe(404);
    const res = await api('/jobs/no-such-job');
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'not_found' } });
  });
});
