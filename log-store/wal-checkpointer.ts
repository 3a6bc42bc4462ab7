import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How often the background thread checkpoints the WAL, ms. */
export const CHECKPOINT_INTERVAL_MS = 100;
/**
 * WAL pages past which the writing connection checkpoints by itself (SQLite's own
 * auto-checkpoint; 4 KiB pages: 64 MiB), a backstop. The WAL starts over from its beginning at
 * the first write after a checkpoint that caught up with it; a writer that never pauses (a job
 * printing flat out) can keep the thread from catching up, and then the WAL grows to this.
 */
export const WRITER_CHECKPOINT_PAGES = 16384;

// The thread's code, plain CommonJS (it runs without the app's TypeScript loader): its own
// connection to the file, a PASSIVE checkpoint (never waits for a lock, never blocks a writer
// or a reader) every interval, until told to stop.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
const checkpoint = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or failing now: the next tick (or the writer's own backstop) checkpoints.
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.once('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

/**
 * Checkpoints a SQLite file's write-ahead log from a thread of its own. SQLite's default runs the
 * checkpoint inside the commit that fills the WAL, on the writing thread: moving the pages written
 * to the WAL into the database file (and syncing both) took about half the time 500,000 lines
 * took to append. The writer keeps an auto-checkpoint as a backstop (`WRITER_CHECKPOINT_PAGES`).
 */
export class WalCheckpointer {
  private readonly thread: Worker;
  private readonly exited: Promise<void>;

  constructor(file: string, intervalMs = CHECKPOINT_INTERVAL_MS) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.thread = new Worker(THREAD_SOURCE, { eval: true, workerData: { file, driver, intervalMs } });
    this.exited = new Promise((resolve) => this.thread.once('exit', () => resolve()));
    // A thread that fails leaves the writer's backstop checkpointing: nothing is lost.
    this.thread.on('error', () => undefined);
    // Never what keeps a process alive.
    this.thread.unref();
  }

  /** Stops the thread and closes its connection. */
  async stop(): Promise<void> {
    this.thread.postMessage('stop');
    await this.exited;
  }
}
