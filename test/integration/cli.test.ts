import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { containersOf, getJob, waitForState } from '../support/api-client.js';
import { hodei } from '../support/cli.js';

describe('the hodei CLI', () => {
  it('submit --concurrency-key K --concurrency-limit N: the job runs under its key, status shows it', async () => {
    const key = `cli-${randomUUID().slice(0, 8)}`;
    const run = await hodei(['submit', '-f', '--concurrency-key', key, '--concurrency-limit', '2', '-'], {
      stdin: 'echo keyed',
    });
    expect(run).toMatchObject({ code: 0, stdout: 'keyed\n' });
    const id = /job (\S+)/.exec(run.stderr)![1]!;
    expect((await getJob(id)).concurrency).toEqual({ key, limit: 2 });
    expect((await hodei(['status', id])).stdout).toMatch(new RegExp(`^concurrency\\s+${key} \\(limit 2\\)$`, 'm'));
    const refused = await hodei(['submit', '--concurrency-limit', '2', '-'], { stdin: 'echo x' });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('--concurrency-limit needs --concurrency-key');
  });

  it('submit --follow prints the output and exits with the job exit code', async () => {
    const run = await hodei(['submit', '--follow', '--env', 'WHO=cli'], {
      stdin: 'echo "hello $WHO"; echo oops >&2; exit 7\n',
    });
    expect(run.stdout).toBe('hello cli\n');
    expect(run.stderr).toContain('oops\n');
    expect(run.stderr).toMatch(/FAILED/);
    expect(run.code).toBe(7);
    // Piped: plain lines, no spinner.
    expect(run.stderr).not.toMatch(/[\r\x1b]/);
    const ok = await hodei(['submit', '-f', '-'], { stdin: 'echo fine' });
    expect(ok).toMatchObject({ code: 0, stdout: 'fine\n' });
  });

  it('submit from a file, then logs -f (stops at the end), status and list', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hodei-cli-'));
    const file = path.join(dir, 'job.sh');
    writeFileSync(file, 'for i in 1 2 3; do echo "line $i"; sleep 0.3; done\n');
    const run = `cli-${randomUUID().slice(0, 8)}`;
    const submitted = await hodei([
      'submit',
      file,
      '--label',
      `run=${run}`,
      '--timeout',
      '60',
      '--name',
      'three lines',
    ]);
    expect(submitted.code).toBe(0);
    const id = submitted.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const logs = await hodei(['logs', '-f', id]);
    expect(logs).toMatchObject({ code: 0, stdout: 'line 1\nline 2\nline 3\n' });
    expect((await getJob(id)).state).toBe('SUCCEEDED');

    const status = await hodei(['status', id, '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({
      id,
      state: 'SUCCEEDED',
      exitCode: 0,
      name: 'three lines',
      labels: { run },
    });
    expect((await hodei(['status', id])).stdout).toMatch(/^state\s+SUCCEEDED$/m);
    expect((await hodei(['logs', id])).stdout).toBe('line 1\nline 2\nline 3\n');

    const listed = await hodei(['list', '--label', `run=${run}`, '--json']);
    expect(
      listed.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { id: string }).id),
    ).toEqual([id]);
    const table = await hodei(['list', '--label', `run=${run}`, '--state', 'succeeded']);
    expect(table.stdout).toMatch(/^ID\s+STATE\s+EXIT\s+CREATED\s+NAME\n/);
    expect(table.stdout).toContain(id);
  });

  it('submit --secret NAME=VALUE, and --secret NAME from the caller’s environment: delivered, masked', async () => {
    const run = await hodei(['submit', '-f', '--secret', 'ONE=first-secret', '--secret', 'TWO'], {
      stdin: 'echo "$ONE and $TWO"; echo "${#TWO}"\n',
      env: { TWO: 'second-secret-from-env' },
    });
    expect(run).toMatchObject({ code: 0, stdout: `*** and ***\n${'second-secret-from-env'.length}\n` });
    const unset = await hodei(['submit', '--secret', 'NOT_SET_ANYWHERE'], { stdin: 'true' });
    expect(unset.code).not.toBe(0);
    expect(unset.stderr).toContain('no variable NOT_SET_ANYWHERE');
  });

  it('cancel stops a running job', async () => {
    const submitted = await hodei(['submit', '-'], { stdin: 'sleep 300' });
    const id = submitted.stdout.trim();
    await waitForState(id, ['RUNNING']);
    const cancelled = await hodei(['cancel', id, '--wait']);
    expect(cancelled).toMatchObject({ code: 0, stdout: 'CANCELLED\n' });
    expect(await containersOf(id)).toEqual([]);
  });

  it('submit --priority --fairness-key --fairness-weight --start-at, shown by status; list --priority', async () => {
    const startAt = new Date(Date.now() + 3_600_000).toISOString();
    const flags = ['--priority', '2', '--fairness-key', 'team-cli', '--fairness-weight', '2.5', '--start-at', startAt];
    const submitted = await hodei(['submit', ...flags, '-'], { stdin: 'true' });
    expect(submitted.code).toBe(0);
    const id = submitted.stdout.trim();
    const status = JSON.parse((await hodei(['status', id, '--json'])).stdout) as Record<string, unknown>;
    expect(status).toMatchObject({
      state: 'QUEUED',
      priority: 2,
      fairnessKey: 'team-cli',
      fairnessWeight: 2.5,
      startAt,
    });
    expect(status.reason).toBe(`starts at ${startAt}`);
    expect((await hodei(['status', id])).stdout).toMatch(/^priority\s+2$/m);
    const listed = await hodei(['list', '--priority', '2', '--json', '--limit', '100']);
    expect(
      listed.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { id: string }).id),
    ).toContain(id);
    const bad = await hodei(['submit', '--start-at', 'soon', '-'], { stdin: 'true' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('startAt');
    expect(await hodei(['cancel', id, '--wait'])).toMatchObject({ code: 0, stdout: 'CANCELLED\n' });
  });

  it('says what is wrong, with exit code 2', async () => {
    const denied = await hodei(['status', 'whatever'], { token: 'wrong-token-0123456789' });
    expect(denied.code).toBe(2);
    expect(denied.stderr).toMatch(/401: invalid API token/);
    const missing = await hodei(['status', 'no-such-job']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/404/);
  });
});
