import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LogLine, LogStore } from '../../log-store/log-store.js';
import { LogTails, type TailEvent } from '../../log-store/log-tail.js';
import { LogRetention } from '../../log-store/retention.js';

/** Fresh, empty storage for one test; `open` opens a store on it, again as another process would. */
export interface LogStorage {
  open(): Promise<LogStore>;
  destroy(): Promise<void>;
}

const line = (seq: number, text = `line ${seq}`): LogLine => ({
  seq,
  stream: 'stdout',
  ts: 1000 + seq,
  line: text,
  attempt: 1,
});
const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => line(from + i));
const seqs = (from: number, to: number) => lines(from, to).map((l) => l.seq);

/** A job end the test triggers by hand. */
function manualEnd() {
  let fire!: (v: string) => void;
  const ended = new Promise<string>((resolve) => (fire = resolve));
  return { watchEnd: () => ended, fire };
}

async function collect(
  events: AsyncGenerator<TailEvent<string>>,
): Promise<{ seqs: number[]; end?: string; idles: number }> {
  const got: number[] = [];
  let idles = 0;
  for await (const e of events) {
    if ('lines' in e) got.push(...e.lines.map((l) => l.seq));
    else if ('idle' in e) idles += 1;
    else return { seqs: got, end: e.end, idles };
  }
  return { seqs: got, idles };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const until = async (check: () => boolean) => {
  while (!check()) await sleep(5);
};

/** The store, recording how many lines each read returned (watch and the rest pass through). */
function countingReads(store: LogStore): {
  store: LogStore;
  reads: () => number;
  started: () => number;
  pageSizes: number[];
} {
  const pageSizes: number[] = [];
  let started = 0;
  const counted = new Proxy(store, {
    get(target, prop) {
      if (prop === 'read') {
        return async (...args: Parameters<LogStore['read']>) => {
          started += 1;
          const page = await target.read(...args);
          pageSizes.push(page.length);
          return page;
        };
      }
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: counted, reads: () => pageSizes.length, started: () => started, pageSizes };
}

/**
 * What every LogStore must do, run against each backend: the embedded SQLite file
 * (test/unit/sqlite-log-store.test.ts) and PostgreSQL (test/postgres/postgres-log-store.test.ts). Live tails
 * (log-tail.ts) and the retention sweep (retention.ts) are exercised on the real store too.
 */
export function describeLogStoreContract(name: string, newStorage: () => Promise<LogStorage>): void {
  describe(`${name}: the LogStore contract`, () => {
    let storage: LogStorage;
    let opened: LogStore[];
    /** The store under test. */
    let store: LogStore;
    /** A second store on the same storage: another process (a worker writing while the API reads). */
    let other: LogStore;

    beforeEach(async () => {
      storage = await newStorage();
      opened = [await storage.open(), await storage.open()];
      [store, other] = opened as [LogStore, LogStore];
    });
    afterEach(async () => {
      for (const s of opened) await s.close();
      await storage.destroy();
    });

    describe('reads and writes', () => {
      it('returns lines in seq order, per job', async () => {
        await store.append('a', [line(2), line(1)]);
        await store.append('b', [line(1, 'other')]);
        expect((await store.read('a')).map((l) => l.line)).toEqual(['line 1', 'line 2']);
        expect(await store.read('b')).toEqual([line(1, 'other')]);
        expect(await store.lastSeq('a')).toBe(2);
        expect(await store.lastSeq('missing')).toBe(0);
        expect(await store.read('missing')).toEqual([]);
        await store.append('a', []);
        expect(await store.lastSeq('a')).toBe(2);
      });

      it('writes idempotently by (job id, seq)', async () => {
        await store.append('a', [line(1), line(2)]);
        await store.append('a', [line(2, 'again'), line(3)]);
        await other.append('a', [line(1, 'again'), line(3, 'again')]);
        expect((await store.read('a')).map((l) => l.line)).toEqual(['line 1', 'line 2', 'line 3']);
      });

      it('pages with afterSeq and limit', async () => {
        await store.append('a', lines(1, 5));
        expect((await store.read('a', { afterSeq: 2, limit: 2 })).map((l) => l.seq)).toEqual([3, 4]);
        expect((await store.read('a', { afterSeq: 4 })).map((l) => l.seq)).toEqual([5]);
        expect((await store.read('a', { limit: 3 })).map((l) => l.seq)).toEqual([1, 2, 3]);
        expect(await store.read('a', { afterSeq: 5 })).toEqual([]);
      });

      it('bounds a page by bytes too, never to nothing while lines remain', async () => {
        const kb = (seq: number, stream: LogLine['stream'] = 'stdout'): LogLine => ({
          ...line(seq, String(seq % 10).repeat(1000)),
          stream,
        });
        await store.append('j', [kb(1), kb(2), kb(3, 'stderr'), kb(4), kb(5), kb(6)]);
        // A line is in the page while the lines before it hold fewer than maxBytes.
        expect((await store.read('j', { maxBytes: 2500 })).map((l) => l.seq)).toEqual([1, 2, 3]);
        expect((await store.read('j', { maxBytes: 2000 })).map((l) => l.seq)).toEqual([1, 2]);
        expect((await store.read('j', { maxBytes: 1 })).map((l) => l.seq)).toEqual([1]);
        expect((await store.read('j', { afterSeq: 5, maxBytes: 1 })).map((l) => l.seq)).toEqual([6]);
        expect((await store.read('j', { afterSeq: 1, limit: 2, maxBytes: 1_000_000 })).map((l) => l.seq)).toEqual([
          2, 3,
        ]);
        expect((await store.read('j', { stream: 'stdout', afterSeq: 1, maxBytes: 1500 })).map((l) => l.seq)).toEqual([
          2, 4,
        ]);
        expect(await store.read('j', { afterSeq: 6, maxBytes: 1 })).toEqual([]);
        // Paging by bytes to the end gets every line once.
        const paged: number[] = [];
        for (let page = await store.read('j', { maxBytes: 1800 }); page.length > 0;) {
          paged.push(...page.map((l) => l.seq));
          page = await store.read('j', { afterSeq: paged.at(-1), maxBytes: 1800 });
        }
        expect(paged).toEqual(seqs(1, 6));
      });

      it('filters by stream and returns the last N lines, optionally of one stream', async () => {
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
        expect((await store.read('j', { stream: 'stderr', limit: 1 })).map((l) => l.seq)).toEqual([2]);
        expect(await store.tail('missing', 3)).toEqual([]);
      });

      it('tells where the last N lines begin (of one stream, up to a seq) without reading them', async () => {
        await store.append('j', [
          line(1),
          { ...line(2), stream: 'stderr' },
          line(3),
          { ...line(4), stream: 'stderr' },
          line(5),
        ]);
        expect(await store.tailStart('j', 2)).toBe(3);
        expect(await store.tailStart('j', 5)).toBe(0);
        expect(await store.tailStart('j', 1_000_000)).toBe(0);
        expect(await store.tailStart('j', 1, { stream: 'stderr' })).toBe(2);
        expect(await store.tailStart('j', 2, { stream: 'stdout' })).toBe(1);
        // As asked when seq 3 was the last line: lines 2 and 3.
        expect(await store.tailStart('j', 2, { untilSeq: 3 })).toBe(1);
        expect(await store.tailStart('j', 1, { stream: 'stderr', untilSeq: 3 })).toBe(0);
        expect(await store.tailStart('missing', 3)).toBe(0);
        // Reading from it gets exactly what tail() gets.
        for (const [count, stream] of [
          [2, undefined],
          [1, 'stderr'],
          [9, 'stdout'],
        ] as const) {
          const from = await store.tailStart('j', count, { stream });
          expect(await store.read('j', { afterSeq: from, stream })).toEqual(await store.tail('j', count, { stream }));
        }
      });

      it('keeps every field and the text exactly: ANSI, \\r, tabs, Unicode, empty and long lines', async () => {
        const now = Date.now();
        const kept: LogLine[] = [
          { seq: 1, stream: 'stdout', ts: now, line: '\x1b[31mred\x1b[0m and \x1b[1;32mbold green\x1b[0m', attempt: 1 },
          { seq: 2, stream: 'stderr', ts: now + 1, line: 'progress 10%\rprogress 100%\t\tdone', attempt: 2 },
          { seq: 3, stream: 'system', ts: now + 2, line: '[hodei] attempt 2 started', attempt: 2 },
          { seq: 4, stream: 'stdout', ts: now + 3, line: 'ünïcødé 日本語 🚀 \uFFFD', attempt: 2 },
          { seq: 5, stream: 'stdout', ts: now + 4, line: '', attempt: 2 },
          { seq: 6, stream: 'stdout', ts: now + 5, line: 'x'.repeat(64 * 1024), attempt: 2 },
        ];
        await store.append('j', kept);
        expect(await other.read('j')).toEqual(kept);
        expect(await other.tail('j', 6)).toEqual(kept);
      });

      it('is durable: a store opened later on the same storage sees the lines', async () => {
        await store.append('a', [line(1)]);
        await store.close();
        opened = [other];
        const later = await storage.open();
        opened.push(later);
        expect(await later.read('a')).toEqual([line(1)]);
        expect(await other.read('a')).toEqual([line(1)]);
      });

      it('writes batches of every size around a statement or chunk (100, 256 lines) whole, exactly and in order', async () => {
        // Sizes at and around the rows of one insert statement, several statements, and a remainder.
        let next = 1;
        const written: LogLine[] = [];
        for (const size of [1, 99, 100, 101, 199, 200, 201, 250, 255, 256, 257, 512]) {
          const batch = Array.from({ length: size }, (_, i) => ({
            seq: next + i,
            stream: (['stdout', 'stderr', 'system'] as const)[(next + i) % 3]!,
            ts: 1_764_300_000_000 + next + i,
            line: `${size}:${i} "q" \\ é 🎉`,
            attempt: 1 + ((next + i) % 2),
          }));
          await store.append('sizes', batch);
          written.push(...batch);
          next += size;
        }
        // A retry that overlaps what is stored (a statement's rows partly new) keeps the first copy.
        await other.append('sizes', [...written.slice(1100, 1151).map((l) => ({ ...l, line: 'again' })), line(next)]);
        expect(await other.read('sizes')).toEqual([...written, line(next)]);
      });

      it('pages, tails and counts back exactly like a plain filter of every line, across many appends', async () => {
        // Lines of all three streams and of varied lengths, some long, in appends of varied sizes
        // (one line at a time too), with a gap in the numbering.
        const all: LogLine[] = [];
        for (let seq = 1; all.length < 1300; seq += seq === 700 ? 5 : 1)
          all.push({
            seq,
            stream: (['stdout', 'stdout', 'stderr', 'system'] as const)[seq % 4]!,
            ts: 1_764_300_000_000 + seq * 7,
            line: seq % 97 === 0 ? 'L'.repeat(20_000) : `${seq}`.repeat(seq % 13),
            attempt: seq > 1000 ? 2 : 1,
          });
        for (let at = 0, size = 1; at < all.length; at += size, size = (size * 7) % 300 || 1)
          await store.append('j', all.slice(at, at + size));
        const of = (stream?: LogLine['stream']) => all.filter((l) => !stream || l.stream === stream);
        expect(await other.read('j')).toEqual(all);
        expect(await other.lastSeq('j')).toBe(all.at(-1)!.seq);
        for (const stream of [undefined, 'stdout', 'stderr', 'system'] as const) {
          const lines = of(stream);
          for (const afterSeq of [0, 1, 255, 256, 257, 699, 700, 702, 1000, 1299, all.at(-1)!.seq])
            for (const limit of [1, 50, 300])
              expect(await other.read('j', { afterSeq, limit, stream })).toEqual(
                lines.filter((l) => l.seq > afterSeq).slice(0, limit),
              );
          for (const count of [0, 1, 255, 256, 257, 600, 5000]) {
            expect(await other.tail('j', count, { stream })).toEqual(count === 0 ? [] : lines.slice(-count));
            for (const untilSeq of [undefined, 1, 300, 702, 1100]) {
              const upTo = lines.filter((l) => untilSeq === undefined || l.seq <= untilSeq);
              const expected = count < upTo.length ? upTo[upTo.length - count - 1]!.seq : 0;
              expect(await other.tailStart('j', count, { stream, untilSeq })).toBe(expected);
            }
          }
        }
      });

      it('writes a large batch in one append', async () => {
        await store.append('big', lines(1, 20_000));
        expect(await other.lastSeq('big')).toBe(20_000);
        expect((await other.read('big', { afterSeq: 19_998 })).map((l) => l.seq)).toEqual([19_999, 20_000]);
      });
    });

    describe('recorded exits', () => {
      const exit = (exitCode: number) => ({
        exitCode,
        oomKilled: false,
        startedAt: '2026-11-28T07:00:00.000Z',
        finishedAt: '2026-11-28T07:00:01.500Z',
        lastSeq: 42,
      });

      it('keeps how each attempt ended, for any process, replaced when recorded again', async () => {
        expect(await store.recordedExit('a', 1)).toBeUndefined();
        await store.recordExit('a', 1, exit(3));
        await store.recordExit('a', 2, exit(0));
        expect(await other.recordedExit('a', 1)).toEqual(exit(3));
        expect(await other.recordedExit('a', 2)).toEqual(exit(0));
        expect(await other.recordedExit('b', 1)).toBeUndefined();
        await other.recordExit('a', 1, { ...exit(137), oomKilled: true });
        expect(await store.recordedExit('a', 1)).toEqual({ ...exit(137), oomKilled: true });
      });

      it('are deleted with the job', async () => {
        await store.append('a', [line(1)]);
        await store.recordExit('a', 1, exit(0));
        await store.recordExit('b', 1, exit(1));
        await store.deleteJob('a');
        expect(await store.recordedExit('a', 1)).toBeUndefined();
        expect(await store.recordedExit('b', 1)).toEqual(exit(1));
      });
    });

    describe('retention bookkeeping', () => {
      it('lists jobs by their last write, oldest first, and deletes one job whole', async () => {
        await store.append('first', [line(1)]);
        await sleep(5);
        await store.append('second', [line(1)]);
        await sleep(5);
        await store.append('first', [line(2)]);
        const after = Date.now() + 1;
        expect(await store.jobsWrittenBefore(after, 10)).toEqual(['second', 'first']);
        expect(await store.jobsWrittenBefore(after, 1)).toEqual(['second']);
        expect(await store.jobsWrittenBefore(0, 10)).toEqual([]);

        await store.deleteJob('first');
        expect(await store.read('first')).toEqual([]);
        expect(await store.lastSeq('first')).toBe(0);
        expect(await store.jobsWrittenBefore(after, 10)).toEqual(['second']);
        expect(await store.lastSeq('second')).toBe(1);
        await store.deleteJob('missing');
      });

      // The job-state answers are stand-ins; the integration tier asks a real Temporal.
      it('sweeps: pages through many candidates, keeps running jobs, deletes nothing when Temporal cannot answer', async () => {
        for (let i = 0; i < 250; i++) await store.append(`job-${i}`, [line(1)]);
        const running = (id: string) => Number(id.slice(4)) % 2 === 0;
        const retention = new LogRetention(store, {
          retentionMs: 1000,
          intervalMs: 1000,
          isFinished: async (id) => !running(id),
        });
        expect(await retention.sweep(Date.now() + 2000)).toBe(125);
        expect(await store.lastSeq('job-1')).toBe(0);
        expect(await store.lastSeq('job-2')).toBe(1);

        const unreachable = new LogRetention(store, {
          retentionMs: 1000,
          intervalMs: 1000,
          isFinished: () => Promise.reject(new Error('temporal unreachable')),
        });
        await expect(unreachable.sweep(Date.now() + 2000)).rejects.toThrow('unreachable');
        expect((await store.jobsWrittenBefore(Date.now() + 2000, 1000)).length).toBe(125);
      });

      it('sweeps only logs not written to for the whole period', async () => {
        await store.append('fresh', [line(1)]);
        const retention = new LogRetention(store, {
          retentionMs: 60_000,
          intervalMs: 1000,
          isFinished: async () => true,
        });
        expect(await retention.sweep(Date.now())).toBe(0);
        expect(await store.lastSeq('fresh')).toBe(1);
      });
    });

    describe('live tails (LogTails on this store; lines written by another store)', () => {
      it('sends stored lines, then live lines, then the end, each line once and in order', async () => {
        const end = manualEnd();
        const tails = new LogTails(store, { watchEnd: end.watchEnd, pollMs: 5, pageSize: 7 });
        await other.append('j', lines(1, 20));
        const following = collect(tails.follow('j', 0, new AbortController().signal));
        for (let n = 21; n <= 100; n += 5) {
          await other.append('j', lines(n, n + 4));
          await sleep(2);
        }
        end.fire('done');
        const result = await following;
        expect(result.seqs).toEqual(seqs(1, 100));
        expect(result.end).toBe('done');
        expect(tails.activeJobs).toBe(0);
      });

      it('pages by bytes as well as by lines, for the poller and for followers catching up', async () => {
        const end = manualEnd();
        const counted = countingReads(store);
        const tails = new LogTails(counted.store, { watchEnd: end.watchEnd, pollMs: 5, pageBytes: 25_000 });
        const long = (from: number, to: number) =>
          lines(from, to).map((l) => ({ ...l, line: `${l.seq} `.padEnd(10_000, 'x') }));
        await other.append('j', long(1, 40));
        const events = tails.follow('j', 0, new AbortController().signal);
        const pages: number[][] = [];
        const following = (async () => {
          for await (const e of events) {
            if ('lines' in e) pages.push(e.lines.map((l) => l.seq));
            if ('end' in e) return e.end;
          }
        })();
        // Live lines in batches larger than a page.
        for (let n = 41; n <= 100; n += 20) await other.append('j', long(n, n + 19));
        end.fire('done');
        expect(await following).toBe('done');
        expect(pages.flat()).toEqual(seqs(1, 100));
        // Three 10 kB lines reach 25 kB: no read returned more.
        expect(Math.max(...counted.pageSizes)).toBe(3);
      });

      it('resumes after a given seq and tolerates gaps in the numbering', async () => {
        const end = manualEnd();
        const tails = new LogTails(store, { watchEnd: end.watchEnd, pollMs: 5 });
        await other.append('j', [line(1), line(2), line(3), line(7)]);
        end.fire('x');
        expect((await collect(tails.follow('j', 2, new AbortController().signal))).seqs).toEqual([3, 7]);
      });

      it('lets many followers share one poller', async () => {
        const end = manualEnd();
        const counted = countingReads(store);
        const tails = new LogTails(counted.store, { watchEnd: end.watchEnd, pollMs: 10 });
        const followers = Array.from({ length: 50 }, () => collect(tails.follow('j', 0, new AbortController().signal)));
        await until(() => tails.activeJobs === 1);
        // Every follower first reads on its own (one empty page here), all at once; once those
        // reads are done (none in flight but the poller's), each takes lines from the poller.
        // Waiting for that, not for a fixed time, keeps a slow store's catch-up out of the count.
        await until(() => counted.started() >= 50 && counted.started() - counted.reads() <= 1);
        const readsBefore = counted.reads();
        const startedAt = Date.now();
        for (let n = 1; n <= 20; n++) {
          await other.append('j', [line(n)]);
          await sleep(10);
        }
        end.fire('done');
        const results = await Promise.all(followers);
        const polls = (Date.now() - startedAt) / 10;
        for (const r of results) expect(r).toEqual({ seqs: seqs(1, 20), end: 'done', idles: 0 });
        // One poller reading every 10 ms (or on each append), not fifty: measured against the
        // time it really took (appends are slow on a loaded machine), fifty would read ~50x this.
        expect(counted.reads() - readsBefore).toBeLessThan(3 * (polls + 20 + 5));
      });

      it('follows several jobs at once, each follower getting only its job', async () => {
        const ends = { a: manualEnd(), b: manualEnd() };
        const tails = new LogTails(store, { watchEnd: (id) => ends[id as 'a' | 'b'].watchEnd(), pollMs: 5 });
        const a = collect(tails.follow('a', 0, new AbortController().signal));
        const b = [
          collect(tails.follow('b', 0, new AbortController().signal)),
          collect(tails.follow('b', 3, new AbortController().signal)),
        ];
        await until(() => tails.activeJobs === 2);
        for (let n = 1; n <= 10; n++) {
          await other.append('a', [line(n, `a ${n}`)]);
          await other.append('b', [line(n, `b ${n}`)]);
        }
        ends.a.fire('a done');
        ends.b.fire('b done');
        expect(await a).toEqual({ seqs: seqs(1, 10), end: 'a done', idles: 0 });
        const [b0, b3] = await Promise.all(b);
        expect(b0).toEqual({ seqs: seqs(1, 10), end: 'b done', idles: 0 });
        expect(b3).toEqual({ seqs: seqs(4, 10), end: 'b done', idles: 0 });
        expect(tails.activeJobs).toBe(0);
      });

      it('a slow follower falls back to reading the store and still misses nothing', async () => {
        const end = manualEnd();
        const tails = new LogTails(store, { watchEnd: end.watchEnd, pollMs: 2, pageSize: 50, maxQueuedLines: 20 });
        const events = tails.follow('j', 0, new AbortController().signal);
        const got: number[] = [];
        const writer = (async () => {
          for (let n = 1; n <= 1000; n += 10) {
            await other.append('j', lines(n, n + 9));
            await sleep(1);
          }
          end.fire('done');
        })();
        let ended = false;
        for await (const e of events) {
          if ('lines' in e) {
            got.push(...e.lines.map((l) => l.seq));
            await sleep(3); // a slow client
          } else if ('end' in e) {
            ended = true;
            break;
          }
        }
        await writer;
        expect(got).toEqual(seqs(1, 1000));
        expect(ended).toBe(true);
      });

      it('a follower catching up reads each line once: the poller hands it nothing meanwhile', async () => {
        const end = manualEnd();
        const counted = countingReads(store);
        const tails = new LogTails(counted.store, { watchEnd: end.watchEnd, pollMs: 2, pageSize: 50 });
        await other.append('j', lines(1, 1000));
        const events = tails.follow('j', 0, new AbortController().signal);
        const got: number[] = [];
        const writer = (async () => {
          for (let n = 1001; n <= 2000; n += 10) {
            await other.append('j', lines(n, n + 9));
            await sleep(1);
          }
          end.fire('done');
        })();
        for await (const e of events) {
          if ('lines' in e) {
            got.push(...e.lines.map((l) => l.seq));
            await sleep(4); // a client slower than the writer
          } else if ('end' in e) break;
        }
        await writer;
        expect(got).toEqual(seqs(1, 2000));
        // Once each, give or take the poller's first page: no line read by both it and the follower.
        const read = counted.pageSizes.reduce((a, b) => a + b, 0);
        expect(read).toBeLessThanOrEqual(2000 + 50);
      });

      it('sends idle ticks while quiet and stops when the follower goes away', async () => {
        const end = manualEnd();
        const tails = new LogTails(store, { watchEnd: end.watchEnd, pollMs: 5, idleMs: 20 });
        const abort = new AbortController();
        let idles = 0;
        for await (const e of tails.follow('j', 0, abort.signal)) {
          if ('idle' in e) idles += 1;
          if (idles === 2) abort.abort();
        }
        expect(idles).toBe(2);
        expect(tails.activeJobs).toBe(0);
      });

      it('a live line and the end reach followers promptly, by a poll or by the store waking the tail', async () => {
        const end = manualEnd();
        // A store that can wake the tail is polled only once a minute here: the wake must do it.
        const tails = new LogTails(store, { watchEnd: end.watchEnd, pollMs: 5, safetyPollMs: 60_000 });
        const arrivals = new Map<number, number>();
        const following = (async () => {
          for await (const e of tails.follow('j', 0, new AbortController().signal)) {
            if ('lines' in e) for (const l of e.lines) arrivals.set(l.seq, Date.now());
            if ('end' in e) return;
          }
        })();
        await until(() => tails.activeJobs === 1);
        await sleep(100);
        const delays: number[] = [];
        for (let n = 1; n <= 10; n++) {
          const written = Date.now();
          await other.append('j', [line(n)]);
          await until(() => arrivals.has(n));
          delays.push(arrivals.get(n)! - written);
          await sleep(20);
        }
        const endedAt = Date.now();
        end.fire('done');
        await following;
        expect(Date.now() - endedAt).toBeLessThan(2000);
        expect(delays).toHaveLength(10);
        // Generous for a loaded 2-core machine; the median is a few ms.
        expect(Math.max(...delays)).toBeLessThan(2000);
        expect([...delays].sort((x, y) => x - y)[5]).toBeLessThan(1000);
      });
    });
  });
}
