import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LogLine, LogStore, ReadLogOptions } from '../../log-store/log-store.js';
import { LogTails, type TailEvent } from '../../log-store/log-tail.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';

let dir: string;
let store: SqliteLogStore;
let reads: number;
let counting: LogStore;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'hodei-tail-'));
  store = SqliteLogStore.inDataDir(dir);
  reads = 0;
  counting = {
    append: (id, lines) => store.append(id, lines),
    read: (id, options?: ReadLogOptions) => {
      reads += 1;
      return store.read(id, options);
    },
    tail: (id, n, options) => store.tail(id, n, options),
    lastSeq: (id) => store.lastSeq(id),
    jobsWrittenBefore: (ts, limit) => store.jobsWrittenBefore(ts, limit),
    deleteJob: (id) => store.deleteJob(id),
    close: () => store.close(),
  };
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const line = (seq: number): LogLine => ({ seq, stream: 'stdout', ts: seq, line: `line ${seq}`, attempt: 1 });
const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => line(from + i));

/** A job end the test triggers by hand. */
function manualEnd() {
  let fire!: (v: string) => void;
  const ended = new Promise<string>((resolve) => (fire = resolve));
  return { watchEnd: () => ended, fire };
}

async function collect(events: AsyncGenerator<TailEvent<string>>): Promise<{ seqs: number[]; end?: string; idles: number }> {
  const seqs: number[] = [];
  let idles = 0;
  for await (const e of events) {
    if ('lines' in e) seqs.push(...e.lines.map((l) => l.seq));
    else if ('idle' in e) idles += 1;
    else return { seqs, end: e.end, idles };
  }
  return { seqs, idles };
}

const until = async (check: () => boolean) => {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
};

describe('LogTails', () => {
  it('sends stored lines, then live lines, then the end, each line once and in order', async () => {
    const end = manualEnd();
    const tails = new LogTails(counting, { watchEnd: end.watchEnd, pollMs: 5, pageSize: 7 });
    await store.append('j', lines(1, 20));
    const following = collect(tails.follow('j', 0, new AbortController().signal));
    for (let n = 21; n <= 100; n += 5) {
      await store.append('j', lines(n, n + 4));
      await new Promise((r) => setTimeout(r, 2));
    }
    end.fire('done');
    const result = await following;
    expect(result.seqs).toEqual(lines(1, 100).map((l) => l.seq));
    expect(result.end).toBe('done');
    expect(tails.activeJobs).toBe(0);
  });

  it('resumes after a given seq and tolerates gaps in the numbering', async () => {
    const end = manualEnd();
    const tails = new LogTails(counting, { watchEnd: end.watchEnd, pollMs: 5 });
    await store.append('j', [line(1), line(2), line(3), line(7)]);
    end.fire('x');
    expect((await collect(tails.follow('j', 2, new AbortController().signal))).seqs).toEqual([3, 7]);
  });

  it('lets many followers share one poller', async () => {
    const end = manualEnd();
    const tails = new LogTails(counting, { watchEnd: end.watchEnd, pollMs: 10 });
    const followers = Array.from({ length: 50 }, () => collect(tails.follow('j', 0, new AbortController().signal)));
    await until(() => tails.activeJobs === 1);
    await new Promise((r) => setTimeout(r, 50));
    const readsBefore = reads;
    for (let n = 1; n <= 20; n++) {
      await store.append('j', [line(n)]);
      await new Promise((r) => setTimeout(r, 10));
    }
    end.fire('done');
    const results = await Promise.all(followers);
    for (const r of results) expect(r.seqs).toEqual(lines(1, 20).map((l) => l.seq));
    // One poller reading every ~10 ms for ~250 ms, not fifty.
    expect(reads - readsBefore).toBeLessThan(100);
  });

  it('a slow follower falls back to reading the store and still misses nothing', async () => {
    const end = manualEnd();
    const tails = new LogTails(counting, { watchEnd: end.watchEnd, pollMs: 2, pageSize: 50, maxQueuedLines: 20 });
    const events = tails.follow('j', 0, new AbortController().signal);
    const seqs: number[] = [];
    const writer = (async () => {
      for (let n = 1; n <= 1000; n += 10) {
        await store.append('j', lines(n, n + 9));
        await new Promise((r) => setTimeout(r, 1));
      }
      end.fire('done');
    })();
    for await (const e of events) {
      if ('lines' in e) {
        seqs.push(...e.lines.map((l) => l.seq));
        await new Promise((r) => setTimeout(r, 3)); // a slow client
      } else if ('end' in e) break;
    }
    await writer;
    expect(seqs).toEqual(lines(1, 1000).map((l) => l.seq));
  });

  it('sends idle ticks while quiet and stops when the follower goes away', async () => {
    const end = manualEnd();
    const tails = new LogTails(counting, { watchEnd: end.watchEnd, pollMs: 5, idleMs: 20 });
    const abort = new AbortController();
    const events = tails.follow('j', 0, abort.signal);
    let idles = 0;
    for await (const e of events) {
      if ('idle' in e) idles += 1;
      if (idles === 2) abort.abort();
    }
    expect(idles).toBe(2);
    expect(tails.activeJobs).toBe(0);
  });
});

describe('SqliteLogStore tail and stream filter', () => {
  it('returns the last N lines, optionally of one stream', async () => {
    await store.append('j', [
      line(1),
      { ...line(2), stream: 'stderr' },
      line(3),
      { ...line(4), stream: 'stderr' },
      line(5),
    ]);
    expect((await store.tail('j', 2)).map((l) => l.seq)).toEqual([4, 5]);
    expect((await store.tail('j', 10, { stream: 'stderr' })).map((l) => l.seq)).toEqual([2, 4]);
    expect((await store.read('j', { stream: 'stdout', afterSeq: 1 })).map((l) => l.seq)).toEqual([3, 5]);
  });
});
