import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HodeiClient, type LogEvent } from '../../cli/client.js';
import { clientFor, docker } from '../support/api-client.js';
import { containersLeft, lineReport, numberedScript } from '../support/faults.js';
import { ROOT, startStack, type RunningStack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/**
 * Fault: the API killed (-9) while clients follow a job's live log, then started again at the
 * same URL. The followers are the product's own: the CLI (`hodei logs -f`) as users run it, and
 * its client's `follow` in this process, which also hands over the `end` event.
 */
let stack: RunningStack;

beforeAll(async () => {
  stack = await startStack();
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const { submit, waitForEnd } = clientFor(() => stack.info);

const LINES = 100;

/** `hodei logs -f <id>` against this file's stack, piped; what it printed so far, and how it ended. */
function followWithCli(id: string) {
  const child = spawn(process.execPath, [path.join(ROOT, 'cli/hodei.mjs'), 'logs', '-f', id], {
    cwd: tmpdir(),
    env: { PATH: process.env.PATH, HODEI_URL: stack.info.apiUrl, HODEI_TOKEN: stack.info.apiToken },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  return { stdout: () => stdout, stderr: () => stderr, exited, kill: () => child.kill('SIGKILL') };
}

describe('the API killed mid-SSE and started again at the same URL', () => {
  it('a follower resumes: every line exactly once, in order, then the end event', async () => {
    // A line every 0.3 s: still printing once both followers (one a CLI process) have ten lines.
    const job = await submit({ script: numberedScript(LINES, 0.3) });
    const events: LogEvent[] = [];
    const following = new HodeiClient(stack.info.apiUrl, stack.info.apiToken).follow(job.id, (e) => events.push(e));
    following.catch(() => undefined);
    const cli = followWithCli(job.id);
    try {
      await waitFor(
        'both followers to have lines',
        () => (events.length >= 10 && cli.stdout().split('\n').length > 10 ? true : undefined),
        { timeoutMs: 120_000, intervalMs: 50 },
      );
      await stack.killApi('SIGKILL');
      const atKill = events.length;
      // The job goes on printing while the API is away.
      await sleep(2000);
      await stack.startApi();

      const end = await following;
      const cliCode = await cli.exited;
      const done = await waitForEnd(job.id, 60_000);
      const sdkReport = lineReport(
        events.map((e) => e.line),
        LINES,
      );
      const cliReport = lineReport(cli.stdout().replace(/\n$/, '').split('\n'), LINES);
      const seen = {
        state: done.state,
        end,
        seqsInOrder: events.every((e, i) => e.seq === i + 1),
        linesAfterRestart: events.length - atKill > 0,
        client: sdkReport,
        cli: { exitCode: cliCode, stderr: cli.stderr(), ...cliReport },
        containersLeft: await containersLeft(docker, stack.info.instanceId),
      };
      console.info(`[fault: api restart] ${JSON.stringify({ ...seen, linesAtKill: atKill })}`);
      const exactlyOnce = { lost: 0, duplicated: 0, inOrder: true, foreign: 0 };
      expect(seen).toEqual({
        state: 'SUCCEEDED',
        end: { state: 'SUCCEEDED', exitCode: 0 },
        seqsInOrder: true,
        linesAfterRestart: true,
        client: exactlyOnce,
        cli: { exitCode: 0, stderr: '', ...exactlyOnce },
        containersLeft: 0,
      });
    } finally {
      cli.kill();
    }
  }, 300_000);
});
