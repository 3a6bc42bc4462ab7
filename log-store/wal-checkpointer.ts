import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How often the background thread looks at what was written since its last checkpoint, ms. */
export const CHECKPOINT_INTERVAL_MS = 100;
/**
 * Written since the last checkpoint (text, in UTF-16 code units, about bytes) past which the
 * thread checkpoints at its next look. Less is checkpointed once `CHECKPOINT_TRICKLE_MS` have
 * passed since the last checkpoint: the first commit after a checkpoint that caught up starts the
 * WAL over and syncs its header, on the writing thread (measured: 1.6 ms a commit on average and
 * 40 ms at p99 with a checkpoint every 100 ms behind jobs writing a line or two each, 0.3 ms
 * without), so a trickle of small writes is checkpointed seldom and a flood often.
 */
export const CHECKPOINT_AFTER_BYTES = 1024 * 1024;
export const CHECKPOINT_TRICKLE_MS = 5000;
/**
 * WAL pages past which the writing connection checkpoints by itself (SQLite's own
 * auto-checkpoint; 4 KiB pages: 64 MiB), a backstop. The WAL starts over from its beginning at
 * the first write after a checkpoint that caught up with it; a writer that never pauses (a job
 * printing flat out) can keep the thread from catching up, and then the WAL grows to this.
 */
export const WRITER_CHECKPOINT_PAGES = 16384;

// The thread's code, plain CommonJS (it runs without the app's TypeScript loader): its own
// connection to the file; at each look, a PASSIVE checkpoint (never waits for a lock, never
// blocks a writer or a reader) when enough was written (counters[0], added to by the writer,
// taken off here), or anything once the trickle delay has passed; counters[1] counts them.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
const counters = new Int32Array(workerData.counters);
let last = Date.now();
const look = () => {
  const written = Atomics.load(counters, 0);
  if (written <= 0) return;
  if (written < workerData.afterBytes && Date.now() - last < workerData.trickleMs) return;
  Atomics.sub(counters, 0, written);
  last = Date.now();
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or failing now: a later look (or the writer's own backstop) checkpoints.
  }
  Atomics.add(counters, 1, 1);
};
const timer = setInterval(look, workerData.intervalMs);
parentPort.once('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

export interface WalCheckpointerOptions {
  intervalMs?: number;
  afterBytes?: number;
  trickleMs?: number;
}

/**
 * Checkpoints a SQLite file's write-ahead log from a thread of its own. SQLite's default runs the
 * checkpoint inside the commit that fills the WAL, on the writing thread: moving the pages written
 * to the WAL into the database file (and syncing both) took about half the time 500,000 lines
 * took to append. The writer tells it what it wrote (`wrote`) and keeps an auto-checkpoint as a
 * backstop (`WRITER_CHECKPOINT_PAGES`).
 */
export class WalCheckpointer {
  private readonly thread: Worker;
  private readonly exited: Promise<void>;
  /** [0]: written since the last checkpoint; [1]: checkpoints run. Shared with the thread. */
  private readonly counters = new Int32Array(new SharedArrayBuffer(8));

  constructor(file: string, options: WalCheckpointerOptions = {}) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.thread = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: {
        file,
        driver,
        counters: this.counters.buffer,
        intervalMs: options.intervalMs ?? CHECKPOINT_INTERVAL_MS,
        afterBytes: options.afterBytes ?? CHECKPOINT_AFTER_BYTES,
        trickleMs: options.trickleMs ?? CHECKPOINT_TRICKLE_MS,
      },
    });
    this.exited = new Promise((resolve) => this.thread.once('exit', () => resolve()));
    // A thread that fails leaves the writer's backstop checkpointing: nothing is lost.
    this.thread.on('error', () => undefined);
    // Never what keeps a process alive.
    this.thread.unref();
  }

  /** The writer committed about `bytes` (any write counts as at least one). */
  wrote(bytes: number): void {
    Atomics.add(this.counters, 0, Math.min(Math.max(1, bytes), CHECKPOINT_AFTER_BYTES));
  }

  /** Checkpoints the thread has run. */
  get checkpoints(): number {
    return Atomics.load(this.counters, 1);
  }

  /** Stops the thread and closes its connection. */
  async stop(): Promise<void> {
    this.thread.postMessage('stop');
    await this.exited;
  }
}
