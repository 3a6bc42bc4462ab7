import { readdir, readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Connection } from '@temporalio/client';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.js';
import { apiToken } from '../../api/auth.js';
import { loadConfig } from '../../domain/config.js';
import type { LogStore } from '../../log-store/log-store.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';
import { api, authHeaders, stack, submit, waitForEnd } from '../support/api-client.js';
import { stackClient } from '../support/temporal.js';
import { waitFor } from '../support/wait.js';

// Reading a big log costs the API a page at a time, whatever the client asks (a tail of a
// million lines) or does (goes away mid-log). One job prints 48,000 numbered lines of 900
// characters (43 MB) once for the whole file.
const LINES = 48_000;
const LINE_CHARS = 900;
const LOG_BYTES = LINES * (LINE_CHARS + 1);
const script = `pad=$(head -c ${LINE_CHARS - 7} /dev/zero | tr '\\0' x)\nfor i in $(seq 1 ${LINES}); do printf '%06d %s\\n' "$i" "$pad"; done`;
const lineNumber = (line: string) => Number(line.slice(0, 6));
let jobId: string;

beforeAll(async () => {
  const job = await submit({ script, timeoutSeconds: 600 });
  jobId = job.id;
  expect((await waitForEnd(job.id, 300_000)).state).toBe('SUCCEEDED');
}, 320_000);

/** Reads a text log as it streams, checking it line by line without keeping it: what came. */
async function readLines(
  res: Response,
): Promise<{ count: number; first?: number; last?: number; inOrder: boolean; bytes: number }> {
  const decoder = new TextDecoder();
  let rest = '';
  let count = 0;
  let bytes = 0;
  let first: number | undefined;
  let last: number | undefined;
  let inOrder = true;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    bytes += chunk.length;
    const lines = (rest + decoder.decode(chunk, { stream: true })).split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      const n = lineNumber(line);
      if (line.length !== LINE_CHARS || (last !== undefined && n !== last + 1)) inOrder = false;
      first ??= n;
      last = n;
      count += 1;
    }
  }
  if (rest !== '') inOrder = false;
  return { count, first, last, inOrder, bytes };
}

const logsUrl = (query: string) => `${stack().apiUrl}/jobs/${jobId}/logs${query}`;

/** The stack's API process: the node process running api/main.ts with this stack's installation id. */
async function apiPid(): Promise<number> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
      if (!cmdline.includes('api/main.ts')) continue;
      const environ = (await readFile(`/proc/${entry}/environ`, 'utf8')).split('\0');
      if (environ.includes(`HODEI_INSTANCE_ID=${stack().instanceId}`)) return Number(entry);
    } catch {
      // A process that ended meanwhile, or not ours to read.
    }
  }
  throw new Error('the stack API process was not found in /proc');
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
}

describe('a tail of any length', () => {
  it('is streamed whole and in order, exactly the last N lines', async () => {
    const all = await readLines(await fetch(logsUrl('?tail=1000000'), { headers: authHeaders() }));
    expect(all).toMatchObject({ count: LINES, first: 1, last: LINES, inOrder: true, bytes: LOG_BYTES });
    expect(await readLines(await fetch(logsUrl(`?tail=${LINES - 1}`), { headers: authHeaders() }))).toMatchObject({
      count: LINES - 1,
      first: 2,
      last: LINES,
      inOrder: true,
    });
    const five = await api(`/jobs/${jobId}/logs?tail=5&stream=stdout`);
    expect(five.headers.get('content-type')).toMatch(/^text\/plain/);
    expect((await five.text()).split('\n').slice(0, -1).map(lineNumber)).toEqual([
      47_996, 47_997, 47_998, 47_999, 48_000,
    ]);
    expect(await (await api(`/jobs/${jobId}/logs?tail=1000000&stream=stderr`)).text()).toBe('');
  });

  it('costs the API a page at a time: five at once of a 43 MB log leave its memory about where it was', async () => {
    const pid = await apiPid();
    const before = await rssKiB(pid);
    let peak = before;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await rssKiB(pid));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const reads = await Promise.all(
      Array.from({ length: 5 }, async () =>
        readLines(await fetch(logsUrl('?tail=1000000'), { headers: authHeaders() })),
      ),
    );
    sampling = false;
    await sampler;
    for (const read of reads) expect(read).toMatchObject({ count: LINES, first: 1, last: LINES, inOrder: true });
    const grewMiB = (peak - before) / 1024;
    console.log(
      `API RSS ${Math.round(before / 1024)} MiB before, ${Math.round(peak / 1024)} MiB peak, five tails of ${LINES} lines (${LOG_BYTES / 1e6} MB each)`,
    );
    // Loading each tail whole held the log several times over per request (rows, joined text,
    // the encoded body): over 1 GB for five. Page by page it is a few MiB each, plus the GC's slack.
    expect(grewMiB).toBeLessThan(150);
  });
});

describe('a client that goes away', () => {
  /** The API in-process on port 0, on a store that counts the bytes of text it reads. */
  let server: ReturnType<typeof serve>;
  let url: string;
  let connection: Connection;
  let store: SqliteLogStore;
  const counted = { bytes: 0 };

  beforeAll(async () => {
    const s = stack();
    connection = await Connection.connect({ address: s.temporalAddress });
    store = SqliteLogStore.inDataDir(s.dataDir);
    const counting = new Proxy(store, {
      get(target, key) {
        if (key === 'read' || key === 'tail') {
          return async (...args: Parameters<LogStore['read'] & LogStore['tail']>) => {
            const lines = await (target[key] as (...a: typeof args) => ReturnType<LogStore['read']>)(...args);
            for (const l of lines) counted.bytes += l.line.length + 1;
            return lines;
          };
        }
        const value = Reflect.get(target, key) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const config = loadConfig({
      HODEI_DATA_DIR: s.dataDir,
      HODEI_INSTANCE_ID: s.instanceId,
      HODEI_TASK_QUEUE: s.taskQueue,
      HODEI_CODEC_KEY: s.codecKey,
    });
    const app = createApp({
      client: stackClient(connection, s),
      logStore: counting,
      config,
      logger: pino({ level: 'silent' }),
      tokens: [apiToken(s.apiToken)],
    });
    await new Promise<void>((resolve) => {
      server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) => {
        url = `http://127.0.0.1:${info.port}`;
        resolve();
      });
    });
  });

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await connection?.close();
    await store?.close();
  });

  /** Opens `path` 20 times, reads the first chunk of each answer, and goes away. */
  async function openAndLeave(path: string, headers: Record<string, string> = {}): Promise<void> {
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const abort = new AbortController();
        const res = await fetch(`${url}${path}`, { headers: { ...authHeaders(), ...headers }, signal: abort.signal });
        expect(res.status).toBe(200);
        const reader = res.body!.getReader();
        const { value } = await reader.read();
        expect(value?.length).toBeGreaterThan(0);
        abort.abort();
        await reader.cancel().catch(() => undefined);
      }),
    );
  }

  /** Bytes read from the store once reading stopped (nothing more for a second). */
  const settledBytes = () => {
    let last = -1;
    return waitFor(
      'store reads to stop',
      async () => {
        const now = counted.bytes;
        if (now === last) return now;
        last = now;
        await new Promise((resolve) => setTimeout(resolve, 1000));
        return undefined;
      },
      { timeoutMs: 60_000, intervalMs: 0 },
    );
  };

  // Read to the end, the 20 would read 20 × 43 MB from the store. Gone after their first chunk,
  // what each had under way is a few pages (of 1 MiB, or 1000 lines for SSE) at most.
  it.each([
    ['the text log', `/jobs/{id}/logs`, {}],
    ['a tail of a million lines', `/jobs/{id}/logs?tail=1000000`, {}],
    ['the SSE stream', `/jobs/{id}/logs/stream`, { accept: 'text/event-stream' }],
  ])('%s: reading stops at once', async (_what, path, headers) => {
    const start = counted.bytes;
    await openAndLeave(path.replace('{id}', jobId), headers);
    const read = (await settledBytes()) - start;
    console.log(
      `20 clients gone after their first chunk: ${(read / 1e6).toFixed(1)} MB read of ${((20 * LOG_BYTES) / 1e6).toFixed(0)} MB`,
    );
    expect(read).toBeLessThan((20 * LOG_BYTES) / 4);
    // The API still answers.
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it('the stack API answers /healthz while 20 clients open the log and go away', async () => {
    const leaving = Promise.all(
      Array.from({ length: 20 }, async () => {
        const abort = new AbortController();
        const res = await fetch(logsUrl(''), { headers: authHeaders(), signal: abort.signal });
        await res.body!.getReader().read();
        abort.abort();
      }),
    );
    const health = await fetch(`${stack().apiUrl}/healthz`);
    await leaving;
    expect(health.status).toBe(200);
    // And once they are gone, a whole read of the log is still complete.
    expect(await readLines(await fetch(logsUrl(''), { headers: authHeaders() }))).toMatchObject({
      count: LINES,
      inOrder: true,
    });
  });
});
