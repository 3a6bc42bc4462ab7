import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { workflowFinished } from '../../api/logs.js';
import { LogRetention } from '../../log-store/retention.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';
import { api, cancel, logs, stack, submit, waitForEnd, waitForState } from '../support/api-client.js';
import { openSse } from '../support/sse.js';
import { stackClient } from '../support/temporal.js';
import { waitFor } from '../support/wait.js';

const streamUrl = (id: string, query = '') => `${stack().apiUrl}/jobs/${id}/logs/stream${query}`;
const numbers = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Waits until the store holds at least `count` lines of the job. */
const waitForStoredLines = (id: string, count: number) =>
  waitFor(
    `${count} stored lines of ${id}`,
    async () => ((await logs(id)).split('\n').length - 1 >= count ? true : undefined),
    {
      timeoutMs: 60_000,
      intervalMs: 20,
    },
  );

describe('live logs over SSE (real Temporal, real Docker)', () => {
  it('sends stored lines, then live lines, then the end event, and closes', async () => {
    const job = await submit({
      script: 'for i in $(seq 1 40); do echo "line $i"; sleep 0.05; done; sleep 0.5; echo bye >&2; exit 2',
    });
    await waitForStoredLines(job.id, 5);
    const sse = await openSse(streamUrl(job.id));
    expect(sse.status).toBe(200);
    await sse.closed;

    const lines = sse.lines();
    expect(lines.map((l) => l.seq)).toEqual(numbers(1, 41));
    expect(lines.slice(0, 40).map((l) => l.line)).toEqual(numbers(1, 40).map((n) => `line ${n}`));
    expect(lines[40]).toMatchObject({ stream: 'stderr', line: 'bye', attempt: 1 });
    expect(lines.every((l) => typeof l.ts === 'number' && l.ts > 0)).toBe(true);
    // Event ids are the seqs; the end event comes last.
    expect(sse.events.filter((e) => !e.event).map((e) => e.id)).toEqual(numbers(1, 41).map(String));
    expect(sse.events.at(-1)?.event).toBe('end');
    expect(sse.end()).toEqual({ state: 'FAILED', exitCode: 2 });
  });

  it('a client reconnecting with Last-Event-ID (or ?after=) mid-job gets every line exactly once', async () => {
    // About 12 s of output: still running after three connections on a loaded machine.
    const job = await submit({ script: 'for i in $(seq 1 60); do echo "n $i"; sleep 0.2; done' });
    await waitForState(job.id, ['RUNNING']);
    const first = await openSse(streamUrl(job.id));
    const seen = await first.waitForLines(10);
    first.close();
    await first.closed;
    const lastId = first.events.filter((e) => !e.event).at(-1)!.id!;
    expect(Number(lastId)).toBe(seen.at(-1)!.seq);

    // The second reconnect uses the header, the third the query form.
    const second = await openSse(streamUrl(job.id), { lastEventId: lastId });
    const more = await second.waitForLines(10);
    second.close();
    await second.closed;
    const secondLast = more.at(-1)!.seq;

    const third = await openSse(streamUrl(job.id, `?after=${secondLast}`));
    await third.closed;
    expect(third.end()).toEqual({ state: 'SUCCEEDED', exitCode: 0 });

    const all = [...first.lines(), ...second.lines(), ...third.lines()];
    expect(all.map((l) => l.seq)).toEqual(numbers(1, 60));
    expect(all.map((l) => l.line)).toEqual(numbers(1, 60).map((n) => `n ${n}`));
    // Still running when the first two reconnected: they really were mid-job.
    expect(first.end()).toBeUndefined();
    expect(second.end()).toBeUndefined();
  });

  it('two subscribers of one job see the same sequence; a quiet stream gets keep-alives', async () => {
    const job = await submit({
      script: 'echo a; sleep 6; for i in $(seq 1 20); do echo "x $i"; echo "e $i" >&2; done',
    });
    await waitForState(job.id, ['RUNNING']);
    const [a, b] = await Promise.all([openSse(streamUrl(job.id)), openSse(streamUrl(job.id))]);
    await Promise.all([a.closed, b.closed]);
    expect(a.lines().map((l) => l.seq)).toEqual(numbers(1, 41));
    expect(b.lines()).toEqual(a.lines());
    expect(a.end()).toEqual({ state: 'SUCCEEDED', exitCode: 0 });
    expect(b.end()).toEqual(a.end());
    // Keep-alive period is 1 s in the test stack; the job was quiet for 6 s, most of it after
    // the streams opened even on a loaded machine.
    expect(a.comments.length).toBeGreaterThanOrEqual(1);
  });

  it('streams a job that already ended: history then end; 404 for an unknown job, 400 for a bad position', async () => {
    const job = await submit({ script: 'echo one; echo two' });
    await waitForEnd(job.id);
    const sse = await openSse(streamUrl(job.id, '?after=1'));
    await sse.closed;
    expect(sse.lines().map((l) => l.line)).toEqual(['two']);
    expect(sse.end()).toEqual({ state: 'SUCCEEDED', exitCode: 0 });

    expect((await api('/jobs/no-such-job/logs/stream')).status).toBe(404);
    expect((await api(`/jobs/${job.id}/logs/stream?after=minus`)).status).toBe(400);
  });

  it('keeps lines faithfully: partial last line, stderr, \\r, ANSI, invalid UTF-8, over-long lines', async () => {
    const script = [
      "printf 'progress 10%%\\rprogress 100%%\\n'",
      "printf '\\033[31mred\\033[0m\\n'",
      "printf 'bad \\377\\376 bytes\\n'",
      'echo oops >&2',
      // 70000 characters on one line: stored as a 65536-byte piece and the rest.
      "head -c 70000 /dev/zero | tr '\\0' 'y'; echo",
      "printf 'no newline at the end'",
    ].join('\n');
    const job = await submit({ script });
    expect((await waitForEnd(job.id)).state).toBe('SUCCEEDED');

    const sse = await openSse(streamUrl(job.id));
    await sse.closed;
    const lines = sse.lines();
    const show = (stream: string) =>
      lines
        .filter((l) => l.stream === stream)
        .map((l) => (l.line.length > 100 ? `${l.line[0]}×${l.line.length}` : l.line));
    // Docker logs stdout and stderr separately, so only each stream's own order is certain.
    expect(show('stdout')).toEqual([
      'progress 10%\rprogress 100%',
      '\x1b[31mred\x1b[0m',
      'bad \uFFFD\uFFFD bytes',
      `y×${64 * 1024}`,
      `y×${70000 - 64 * 1024}`,
      'no newline at the end',
    ]);
    expect(show('stderr')).toEqual(['oops']);
    expect(lines.map((l) => l.seq)).toEqual(numbers(1, 7));

    expect(await logs(job.id)).toContain('\x1b[31mred\x1b[0m\n');
    const stderrOnly = await api(`/jobs/${job.id}/logs?stream=stderr`);
    expect(await stderrOnly.text()).toBe('oops\n');
    const lastTwo = await api(`/jobs/${job.id}/logs?stream=stdout&tail=2`);
    expect(lastTwo.headers.get('content-type')).toMatch(/^text\/plain/);
    expect((await lastTwo.text()).split('\n').map((l) => l.length)).toEqual([70000 - 64 * 1024, 21, 0]);
    expect((await api(`/jobs/${job.id}/logs?stream=both`)).status).toBe(400);
  });

  it('describes the log routes in the OpenAPI document', async () => {
    const doc = (await (await api('/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> };
    expect(doc.paths['/jobs/{id}/logs/stream']?.get).toBeDefined();
    expect(JSON.stringify(doc.paths['/jobs/{id}/logs']?.get)).toContain('tail');
  });

  it('retention: a sweep deletes the logs of jobs that ended (or Temporal forgot), never of a running one', async () => {
    const ended = await submit({ script: 'echo done' });
    const running = await submit({ script: 'sleep 60' });
    await waitForEnd(ended.id);
    await waitForState(running.id, ['RUNNING']);
    // A store of this test's own (a sweep of the shared one would take other tests' logs), asking
    // the shared stack's real Temporal; the clock is moved past the retention period instead.
    const dir = mkdtempSync(path.join(tmpdir(), 'hodei-retention-'));
    const store = SqliteLogStore.inDataDir(dir);
    const connection = await Connection.connect({ address: stack().temporalAddress });
    try {
      const client = stackClient(connection, stack());
      const line = { seq: 1, stream: 'stdout' as const, ts: Date.now(), line: 'x', attempt: 1 };
      for (const id of [ended.id, running.id, 'never-a-job']) await store.append(id, [line]);
      const day = 24 * 3600 * 1000;
      const retention = new LogRetention(store, {
        retentionMs: day,
        intervalMs: day,
        isFinished: (id) => workflowFinished(client, id),
      });
      expect(await retention.sweep(Date.now())).toBe(0);
      expect(await retention.sweep(Date.now() + day + 1000)).toBe(2);
      expect(await store.lastSeq(ended.id)).toBe(0);
      expect(await store.lastSeq('never-a-job')).toBe(0);
      expect(await store.lastSeq(running.id)).toBe(1);
    } finally {
      await cancel(running.id);
      await connection.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
