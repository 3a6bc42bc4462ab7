import type { LogLine, LogStore } from './log-store.js';

/** What a follower receives: lines in seq order, a keep-alive tick while quiet, or the end. */
export type TailEvent<End> = { lines: LogLine[] } | { idle: true } | { end: End };

export interface LogTailsOptions<End> {
  /**
   * Resolves once the job has ended and all its lines are stored (e.g. its workflow closed),
   * with what the final event carries. Called once per followed job, not per follower.
   */
  watchEnd: (jobId: string, signal: AbortSignal) => Promise<End>;
  /** How often a followed job's store is polled for new lines, ms. Default: 20. */
  pollMs?: number;
  /**
   * How often instead when the store wakes the tail on appends itself (`LogStore.watch`): only a
   * safety net for a missed wake, ms. Default: 1000.
   */
  safetyPollMs?: number;
  /** Lines per store read. Default: 1000. */
  pageSize?: number;
  /** Bytes of text per store read, about (see `ReadLogOptions.maxBytes`). Default: 4 MiB. */
  pageBytes?: number;
  /** A follower quiet this long gets an `idle` event (a keep-alive), ms. Default: 15000. */
  idleMs?: number;
  /**
   * Live lines a follower may have waiting before it falls back to reading the store at its
   * own pace (a slow client never makes the API buffer without bound). Default: 10000.
   */
  maxQueuedLines?: number;
}

interface Follower {
  /**
   * Takes the poller's lines. One that is not live (catching up, or its queue overflowed) reads
   * the store at its own pace and is handed nothing: each line is read once for it, by it or by
   * the poller.
   */
  live: boolean;
  /** The poller's lines not yet taken (live followers only). */
  queue: LogLine[];
  /** Highest seq this follower has been sent. */
  last: number;
  wake?: () => void;
}

/**
 * One followed job: a single store poller whose lines fan out to every follower. The poller reads
 * when the store announces an append (if it can: `LogStore.watch`) or its poll interval passes.
 */
class JobTail<End> {
  readonly followers = new Set<Follower>();
  /** Highest seq the poller has read; every line up to it was readable before it was read. */
  cursor = 0;
  /** Set once the job ended and the poller has read every line. */
  ended: { value: End } | undefined;
  private endKnown: { value: End } | undefined;
  private readonly stop = new AbortController();
  private wakePoller?: () => void;
  /** An append was announced, or the end became known, since the poller last began a read. */
  private woken = false;
  private readonly unwatch: (() => void) | undefined;
  readonly ready: Promise<void>;

  constructor(
    private readonly jobId: string,
    private readonly store: LogStore,
    private readonly options: Required<Omit<LogTailsOptions<End>, 'watchEnd'>> & Pick<LogTailsOptions<End>, 'watchEnd'>,
    onError: (err: unknown) => void,
  ) {
    this.unwatch = store.watch?.(jobId, () => this.wake());
    this.ready = store.lastSeq(jobId).then((seq) => {
      this.cursor = seq;
    });
    options.watchEnd(jobId, this.stop.signal).then(
      (value) => {
        this.endKnown = { value };
        this.wake();
      },
      (err: unknown) => {
        if (!this.stop.signal.aborted) onError(err);
      },
    );
    this.ready.then(() => this.poll()).catch(onError);
  }

  close(): void {
    this.unwatch?.();
    this.stop.abort();
    this.wakePoller?.();
  }

  /** Wakes the poller: an append was announced, the end became known, or a follower went live. */
  wake(): void {
    this.woken = true;
    this.wakePoller?.();
  }

  private async poll(): Promise<void> {
    const { pageSize, pageBytes, maxQueuedLines } = this.options;
    const pollMs = this.unwatch ? this.options.safetyPollMs : this.options.pollMs;
    while (!this.stop.signal.aborted) {
      // Captured before the read: the end only counts once a read that began after it was empty.
      const endKnown = this.endKnown;
      this.woken = false;
      const live = [...this.followers].filter((f) => f.live);
      // No follower takes its lines (each is catching up on its own): it reads nothing, and ends
      // nothing, until one goes live.
      if (live.length === 0) {
        await this.pause(pollMs);
        continue;
      }
      // What every live follower has been sent needs no reading.
      this.cursor = Math.max(this.cursor, Math.min(...live.map((f) => f.last)));
      const lines = await this.store.read(this.jobId, { afterSeq: this.cursor, limit: pageSize, maxBytes: pageBytes });
      if (lines.length > 0) {
        this.cursor = lines[lines.length - 1]!.seq;
        for (const f of this.followers) {
          if (!f.live) continue;
          if (f.queue.length + lines.length > maxQueuedLines) {
            // Too far behind: it drops its queue and reads the store again from where it is.
            f.queue = [];
            f.live = false;
          } else {
            f.queue.push(...lines);
          }
          f.wake?.();
        }
      }
      // Read until a page is empty: a page may stop short of the lines stored (pageBytes).
      if (lines.length > 0) continue;
      if (endKnown) {
        this.ended = endKnown;
        for (const f of this.followers) f.wake?.();
        return;
      }
      // What woke the poller during the read (an append, the end) may not be in it.
      if (this.woken) continue;
      await this.pause(pollMs);
    }
  }

  /** Until the poll interval passes or something wakes the poller. */
  private async pause(ms: number): Promise<void> {
    if (this.woken) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakePoller = done;
    });
    this.wakePoller = undefined;
  }
}

/**
 * Live tails of job logs for the API. All followers of one job share one store poller (and one
 * end watcher), so a thousand viewers cost the store what one does. A follower first reads what
 * is stored from its own position, page by page, then takes lines from the shared poller; one
 * that falls too far behind goes back to reading pages. Every line reaches a follower exactly
 * once and in order, which relies on the store's guarantee that a job's lines become readable
 * in seq order.
 */
export class LogTails<End> {
  private readonly tails = new Map<string, JobTail<End>>();
  private readonly options: Required<Omit<LogTailsOptions<End>, 'watchEnd'>> & Pick<LogTailsOptions<End>, 'watchEnd'>;

  constructor(
    private readonly store: LogStore,
    options: LogTailsOptions<End>,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {
    this.options = {
      pollMs: 20,
      safetyPollMs: 1000,
      pageSize: 1000,
      pageBytes: 4 * 1024 * 1024,
      idleMs: 15_000,
      maxQueuedLines: 10_000,
      ...options,
    };
  }

  /** Jobs with a live poller right now (for tests and metrics). */
  get activeJobs(): number {
    return this.tails.size;
  }

  /**
   * Follows a job's log from after `afterSeq` until the job ends (the last event is `end`) or
   * `signal` aborts.
   */
  async *follow(jobId: string, afterSeq: number, signal: AbortSignal): AsyncGenerator<TailEvent<End>> {
    let tail = this.tails.get(jobId);
    if (!tail) {
      tail = new JobTail(jobId, this.store, this.options, this.onError);
      this.tails.set(jobId, tail);
    }
    const follower: Follower = { live: false, queue: [], last: afterSeq };
    tail.followers.add(follower);
    const onAbort = () => follower.wake?.();
    signal.addEventListener('abort', onAbort);
    try {
      // Lines up to the poller's cursor were readable before it read them, so the page reads below
      // find them; once live, the poller hands this follower every line it reads.
      await tail.ready;
      while (!signal.aborted) {
        if (!follower.live) {
          const page = await this.store.read(jobId, {
            afterSeq: follower.last,
            limit: this.options.pageSize,
            maxBytes: this.options.pageBytes,
          });
          if (page.length > 0) {
            follower.last = page[page.length - 1]!.seq;
            yield { lines: page };
            continue;
          }
          // An empty page: everything readable when it began has been sent. Live from here on,
          // unless the poller has read past it meanwhile (those lines went to others: read them).
          if (tail.cursor <= follower.last) {
            follower.live = true;
            follower.queue = [];
            tail.wake();
          }
          continue;
        }
        const fresh = follower.queue.filter((l) => l.seq > follower.last);
        follower.queue = [];
        if (fresh.length > 0) {
          follower.last = fresh[fresh.length - 1]!.seq;
          yield { lines: fresh };
          continue;
        }
        if (tail.ended) {
          yield { end: tail.ended.value };
          return;
        }
        const woken = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), this.options.idleMs);
          follower.wake = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
        follower.wake = undefined;
        if (!woken && !signal.aborted) yield { idle: true };
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      tail.followers.delete(follower);
      if (tail.followers.size === 0 && this.tails.get(jobId) === tail) {
        this.tails.delete(jobId);
        tail.close();
      }
    }
  }

  /** Stops every poller. */
  close(): void {
    for (const tail of this.tails.values()) tail.close();
    this.tails.clear();
  }
}
