import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storedLineCost } from '../../activities/output-lines.js';
import { jobContainers, type Job } from '../support/api-client.js';
import { startStack, type RunningStack } from '../support/stack.js';
import { openSse } from '../support/sse.js';
import { waitFor } from '../support/wait.js';

/**
 * The worker side of logs, on a stack of this file's own (its worker is killed here, which
 * must not disturb the shared stack's jobs), with a log cap of 48 MiB: the cap counts what lines
 * cost the store (about 80 bytes for a short one), and the busy-streams test below stores all of
 * its 300,000 short lines (~24 MB of store) while the 100 MB test is capped.
 */
const LOG_CAP = 48 * 1024 * 1024;
let stack: RunningStack;
let workerPid: number;

beforeAll(async () => {
  // The warm pool off here: with it on, the busy-streams test's second crash found every line
  // stored already (its 'waiting for 330000 stored lines' timed out twice in a row, 2 cores
  // loaded); the reattach of claimed containers is covered by warm-pool.test.ts and test/cluster.
  stack = await startStack({ env: { HODEI_LOG_MAX_BYTES: String(LOG_CAP), HODEI_WARM_POOL: '0' } });
  workerPid = stack.info.workerPid;
}, 180_000);

// stop() also removes the stack's containers, with their volumes.
afterAll(() => stack?.stop(), 60_000);

/** Headers this stack's API wants. */
function authHeaders(): Record<string, string> {
  return { authorization: `Bearer ${stack.info.apiToken}` };
}

async function api(route: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${stack.info.apiUrl}${route}`, {
    ...init,
    headers: { ...authHeaders(), ...(init.headers as Record<string, string>) },
  });
}

async function submit(spec: Record<string, unknown>): Promise<Job> {
  const res = await api('/jobs', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(spec),
  });
  if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as Job;
}

async function job(id: string): Promise<Job> {
  return (await (await api(`/jobs/${id}`)).json()) as Job;
}

const TERMINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];
const waitForEnd = (id: string, timeoutMs = 120_000) =>
  waitFor(
    `job ${id} to end`,
    async () => {
      const j = await job(id);
      return TERMINAL.includes(j.state) ? j : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );

async function storedLines(id: string): Promise<string[]> {
  const text = await (await api(`/jobs/${id}/logs`)).text();
  return text === '' ? [] : text.replace(/\n$/, '').split('\n');
}

const waitForStored = (id: string, count: number) =>
  waitFor(
    `${count} stored lines of job ${id}`,
    async () => ((await storedLines(id)).length >= count ? true : undefined),
    {
      timeoutMs: 60_000,
      intervalMs: 25,
    },
  );

async function containerState(id: string): Promise<string | undefined> {
  const [c] = await jobContainers(stack.info.instanceId, id);
  return c?.State;
}

/** Kills the worker like a crash (SIGKILL), then starts a fresh one: never two at once. */
async function crashWorker(beforeRestart?: () => Promise<unknown>): Promise<void> {
  await stack.stopWorker('SIGKILL');
  await beforeRestart?.();
  workerPid = await stack.startWorker();
}

/**
 * Kills the worker three times while job `id` runs, each time once `lines[i]` more lines are
 * stored: (1) while the job prints, (2) just after the new worker reattached, while it stores
 * the backlog it re-read, (3) then the script ends while no worker runs, and the next one finds
 * a stopped container. A slow restart can find the job's `total` lines stored already: then the
 * next crash comes at once.
 */
async function crashThreeTimes(id: string, lines: [number, number, number], total: number): Promise<void> {
  const more = async (n: number) => Math.min((await storedLines(id)).length + n, total);
  await waitForStored(id, lines[0]);
  await crashWorker();
  await waitForStored(id, await more(lines[1]));
  await crashWorker();
  await waitForStored(id, await more(lines[2]));
  await crashWorker(() =>
    waitFor('the job container to exit', async () => ((await containerState(id)) === 'exited' ? true : undefined), {
      timeoutMs: 90_000,
      intervalMs: 100,
    }),
  );
}

/** Lines stored more than once (the first few, each with where it first and again appeared) and lines missing. */
function differences(stored: string[], expected: string[]) {
  const firstAt = new Map<string, number>();
  const doubled: string[] = [];
  stored.forEach((line, at) => {
    const first = firstAt.get(line);
    if (first === undefined) firstAt.set(line, at);
    else doubled.push(`${line} at ${first} and ${at}`);
  });
  const missing = expected.filter((line) => !firstAt.has(line));
  const few = (list: string[]) =>
    list.length > 6 ? [...list.slice(0, 3), `… ${list.length - 6} more …`, ...list.slice(-3)] : list;
  return { stored: stored.length, doubled: few(doubled), missing: few(missing) };
}

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
}

describe('worker crash and reattach (kill -9, real Temporal, real Docker)', () => {
  it('loses and duplicates nothing when the worker dies three times at different moments', async () => {
    const count = 1500;
    const j = await submit({
      script: `for i in $(seq 1 ${count}); do echo "n $i"; sleep 0.01; done; exit 7`,
      timeoutSeconds: 300,
    });

    await crashThreeTimes(j.id, [100, 20, 20], count);

    const done = await waitForEnd(j.id);
    expect(done.state).toBe('FAILED');
    expect(done.exitCode).toBe(7);
    const expected = Array.from({ length: count }, (_, i) => `n ${i + 1}`);
    expect(await storedLines(j.id)).toEqual(expected);
    // The SSE numbering agrees: seq 1..count, one event each.
    const sse = await openSse(`${stack.info.apiUrl}/jobs/${j.id}/logs/stream`, { token: stack.info.apiToken });
    await sse.closed;
    expect(sse.lines().map((l) => l.seq)).toEqual(expected.map((_, i) => i + 1));
    expect(sse.end()).toEqual({ state: 'FAILED', exitCode: 7 });
  }, 240_000);
});

describe('worker crash and reattach with stdout and stderr both busy', () => {
  it('stores every line of each stream exactly once, in its order, though the attach and the log interleave them differently', async () => {
    // Two processes print at once, 150,000 numbered lines each, in three bursts of 50,000 two
    // seconds apart: within a burst the attach and the log order the two streams' lines
    // differently, and storing one takes long enough for the first crash to land in it.
    const count = 150_000;
    const loop = (prefix: string, redirect: string) =>
      `(for r in 0 1 2; do seq -f '${prefix} %g' $((r * 50000 + 1)) $((r * 50000 + 50000)) ${redirect}; sleep 2; done) &`;
    const j = await submit({ script: `${loop('o', '')}\n${loop('e', '>&2')}\nwait\nexit 3`, timeoutSeconds: 300 });

    await crashThreeTimes(j.id, [30_000, 30_000, 5_000], 2 * count);

    const done = await waitForEnd(j.id);
    expect(done.state).toBe('FAILED');
    expect(done.exitCode).toBe(3);
    const numbers = (prefix: string) => Array.from({ length: count }, (_, i) => `${prefix} ${i + 1}`);
    const ofStream = async (stream: string) =>
      (await (await api(`/jobs/${j.id}/logs?stream=${stream}`)).text()).replace(/\n$/, '').split('\n');
    for (const [stream, prefix] of [
      ['stdout', 'o'],
      ['stderr', 'e'],
    ] as const) {
      const stored = await ofStream(stream);
      // First as counts and positions (readable when it fails: which lines came twice, where), then in order.
      expect(differences(stored, numbers(prefix)), stream).toEqual({ stored: count, doubled: [], missing: [] });
      expect(stored, stream).toEqual(numbers(prefix));
    }
    const sse = await openSse(`${stack.info.apiUrl}/jobs/${j.id}/logs/stream`, { token: stack.info.apiToken });
    await sse.closed;
    expect(sse.lines().map((l) => l.seq)).toEqual(Array.from({ length: 2 * count }, (_, i) => i + 1));
  }, 240_000);
});

describe('bounded resources', () => {
  it('100 MB of output completes, the worker stays small, and the log is capped with one marker line', async () => {
    // 1,000,000 lines of 100 bytes (99 characters and a newline), then 5 bytes on stderr.
    const script = `yes ${'0123456789'.repeat(10).slice(0, 99)} | head -n 1000000\necho done >&2`;
    const before = rssKiB(workerPid);
    const j = await submit({ script, timeoutSeconds: 600 });
    let peak = before;
    let state = '';
    while (!TERMINAL.includes(state)) {
      peak = Math.max(peak, rssKiB(workerPid));
      state = (await job(j.id)).state;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const done = await job(j.id);
    expect(done.state).toBe('SUCCEEDED');
    expect(done.exitCode).toBe(0);
    // Stated bound: the worker's resident memory grows by less than 150 MiB while it reads
    // 100 MB (it never holds the output, only what it is storing).
    console.log(`worker RSS: ${Math.round(before / 1024)} MiB before, ${Math.round(peak / 1024)} MiB peak`);
    expect(peak - before).toBeLessThan(150 * 1024);

    const res = await api(`/jobs/${j.id}/logs?tail=3`);
    const tail = (await res.text()).replace(/\n$/, '').split('\n');
    const stored = await storedLines(j.id);
    const marker = stored.find((l) => l.startsWith('[hodei] log truncated'));
    expect(marker).toBeDefined();
    expect(stored.filter((l) => l.startsWith('[hodei]'))).toHaveLength(1);
    // Everything up to the cap is stored, then the marker; nothing after it.
    expect(stored.at(-1)).toBe(marker);
    expect(tail.at(-1)).toBe(marker);
    // The cap counts what each line costs the store, not only its text.
    const keptCost = stored.slice(0, -1).reduce((n, l) => n + storedLineCost(l), 0);
    expect(keptCost).toBeLessThanOrEqual(LOG_CAP);
    expect(keptCost).toBeGreaterThan(LOG_CAP - storedLineCost(stored[0]!));
    const kept = stored.length - 1;
    expect(marker).toContain(`(${1_000_001 - kept} lines, ${100_000_000 + 5 - kept * 100} bytes dropped)`);
  }, 300_000);
});

describe('the start of a job whose worker died', () => {
  it('stays its first start once a new worker reattached, not the retry’s', async () => {
    // About 90 s of output: still running once a slowly starting worker has reattached.
    const j = await submit({ script: 'for i in $(seq 1 300); do echo "n $i"; sleep 0.3; done', timeoutSeconds: 300 });
    await waitForStored(j.id, 20);
    const first = (await job(j.id)).startedAt;
    expect(first).toBeDefined();
    const crashedAt = Date.now();
    await crashWorker();
    // Lines come again once the retried run has reattached to the container.
    await waitForStored(j.id, (await storedLines(j.id)).length + 20);
    const after = await job(j.id);
    expect(after.state).toBe('RUNNING');
    const started = Date.parse(after.startedAt!);
    expect(started).toBeLessThanOrEqual(Date.parse(first!));
    expect(started).toBeGreaterThanOrEqual(Date.parse(after.createdAt));
    expect(started).toBeLessThan(crashedAt);
    const done = await waitForEnd(j.id);
    expect(done.state).toBe('SUCCEEDED');
    expect(Date.parse(done.startedAt!)).toBeLessThan(crashedAt);
  }, 360_000);
});
