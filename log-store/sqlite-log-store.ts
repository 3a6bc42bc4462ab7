import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { AttemptExit, LogLine, LogStore, ReadLogOptions, TailLogOptions, TailStartOptions } from './log-store.js';

/**
 * The embedded log store: one SQLite file in WAL mode, so the worker writes while API processes
 * read. Appends are synchronous transactions: the writer naturally slows to the disk's pace
 * instead of buffering output in memory.
 */
export class SqliteLogStore implements LogStore {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly selectAfter: Database.Statement;
  private readonly selectAfterOfStream: Database.Statement;
  private readonly selectTail: Database.Statement;
  private readonly selectTailOfStream: Database.Statement;
  private readonly selectLast: Database.Statement;
  private readonly selectTailStart: Database.Statement;
  private readonly selectTailStartOfStream: Database.Statement;
  private readonly insertMany: (jobId: string, lines: readonly LogLine[]) => void;
  private readonly selectWrittenBefore: Database.Statement;
  private readonly deleteAll: (jobId: string) => void;
  private readonly upsertExit: Database.Statement;
  private readonly selectExit: Database.Statement;

  constructor(file: string) {
    // The data dir holds every job's output: this user's only.
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS log_lines (
        job_id  TEXT    NOT NULL,
        seq     INTEGER NOT NULL,
        stream  TEXT    NOT NULL,
        ts      INTEGER NOT NULL,
        line    TEXT    NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (job_id, seq)
      ) WITHOUT ROWID;
      -- When each job's log was last written, for the retention sweep.
      CREATE TABLE IF NOT EXISTS log_jobs (
        job_id       TEXT    PRIMARY KEY,
        last_written INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS log_jobs_last_written ON log_jobs (last_written);
      -- How each attempt ended (AttemptExit as JSON), kept once its container is gone.
      CREATE TABLE IF NOT EXISTS log_exits (
        job_id  TEXT    NOT NULL,
        attempt INTEGER NOT NULL,
        exit    TEXT    NOT NULL,
        PRIMARY KEY (job_id, attempt)
      ) WITHOUT ROWID;
    `);
    // Logs stored before log_jobs existed.
    if (!this.db.prepare('SELECT 1 FROM log_jobs LIMIT 1').get()) {
      this.db.exec('INSERT OR IGNORE INTO log_jobs SELECT job_id, MAX(ts) FROM log_lines GROUP BY job_id');
    }
    this.insert = this.db.prepare(
      'INSERT OR IGNORE INTO log_lines (job_id, seq, stream, ts, line, attempt) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.selectAfter = this.db.prepare(
      'SELECT seq, stream, ts, line, attempt FROM log_lines WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?',
    );
    this.selectAfterOfStream = this.db.prepare(
      'SELECT seq, stream, ts, line, attempt FROM log_lines WHERE job_id = ? AND seq > ? AND stream = ? ORDER BY seq LIMIT ?',
    );
    this.selectTail = this.db.prepare(
      'SELECT seq, stream, ts, line, attempt FROM log_lines WHERE job_id = ? ORDER BY seq DESC LIMIT ?',
    );
    this.selectTailOfStream = this.db.prepare(
      'SELECT seq, stream, ts, line, attempt FROM log_lines WHERE job_id = ? AND stream = ? ORDER BY seq DESC LIMIT ?',
    );
    this.selectLast = this.db.prepare('SELECT MAX(seq) AS seq FROM log_lines WHERE job_id = ?');
    // The seq of the line just before the last `count` (OFFSET count): walks the key, reads no text.
    this.selectTailStart = this.db.prepare(
      'SELECT seq FROM log_lines WHERE job_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1 OFFSET ?',
    );
    this.selectTailStartOfStream = this.db.prepare(
      'SELECT seq FROM log_lines WHERE job_id = ? AND seq <= ? AND stream = ? ORDER BY seq DESC LIMIT 1 OFFSET ?',
    );
    const touch = this.db.prepare(
      'INSERT INTO log_jobs (job_id, last_written) VALUES (?, ?) ON CONFLICT (job_id) DO UPDATE SET last_written = excluded.last_written',
    );
    this.insertMany = this.db.transaction((jobId: string, lines: readonly LogLine[]) => {
      for (const l of lines) this.insert.run(jobId, l.seq, l.stream, l.ts, l.line, l.attempt);
      touch.run(jobId, Date.now());
    });
    this.selectWrittenBefore = this.db.prepare(
      'SELECT job_id FROM log_jobs WHERE last_written < ? ORDER BY last_written LIMIT ?',
    );
    this.deleteAll = this.db.transaction((jobId: string) => {
      this.db.prepare('DELETE FROM log_lines WHERE job_id = ?').run(jobId);
      this.db.prepare('DELETE FROM log_jobs WHERE job_id = ?').run(jobId);
      this.db.prepare('DELETE FROM log_exits WHERE job_id = ?').run(jobId);
    });
    this.upsertExit = this.db.prepare(
      'INSERT INTO log_exits (job_id, attempt, exit) VALUES (?, ?, ?) ON CONFLICT (job_id, attempt) DO UPDATE SET exit = excluded.exit',
    );
    this.selectExit = this.db.prepare('SELECT exit FROM log_exits WHERE job_id = ? AND attempt = ?');
  }

  /** Opens the default store file under the data dir. */
  static inDataDir(dataDir: string): SqliteLogStore {
    return new SqliteLogStore(path.join(dataDir, 'logs.db'));
  }

  async append(jobId: string, lines: readonly LogLine[]): Promise<void> {
    if (lines.length > 0) this.insertMany(jobId, lines);
  }

  async read(jobId: string, options: ReadLogOptions = {}): Promise<LogLine[]> {
    const afterSeq = options.afterSeq ?? 0;
    const limit = options.limit ?? -1;
    const args = options.stream ? [jobId, afterSeq, options.stream, limit] : [jobId, afterSeq, limit];
    const select = options.stream ? this.selectAfterOfStream : this.selectAfter;
    if (options.maxBytes === undefined) return select.all(...args) as LogLine[];
    const page: LogLine[] = [];
    let bytes = 0;
    for (const row of select.iterate(...args) as IterableIterator<LogLine>) {
      page.push(row);
      bytes += Buffer.byteLength(row.line);
      if (bytes >= options.maxBytes) break;
    }
    return page;
  }

  async tail(jobId: string, count: number, options: TailLogOptions = {}): Promise<LogLine[]> {
    const rows = options.stream
      ? (this.selectTailOfStream.all(jobId, options.stream, count) as LogLine[])
      : (this.selectTail.all(jobId, count) as LogLine[]);
    return rows.reverse();
  }

  async tailStart(jobId: string, count: number, options: TailStartOptions = {}): Promise<number> {
    const until = options.untilSeq ?? Number.MAX_SAFE_INTEGER;
    const row = (
      options.stream
        ? this.selectTailStartOfStream.get(jobId, until, options.stream, count)
        : this.selectTailStart.get(jobId, until, count)
    ) as { seq: number } | undefined;
    return row?.seq ?? 0;
  }

  async lastSeq(jobId: string): Promise<number> {
    const row = this.selectLast.get(jobId) as { seq: number | null };
    return row.seq ?? 0;
  }

  async jobsWrittenBefore(ts: number, limit: number): Promise<string[]> {
    return (this.selectWrittenBefore.all(ts, limit) as Array<{ job_id: string }>).map((r) => r.job_id);
  }

  // AttemptExits: how each attempt ended, in the log_exits table beside its lines.

  async recordExit(jobId: string, attempt: number, exit: AttemptExit): Promise<void> {
    this.upsertExit.run(jobId, attempt, JSON.stringify(exit));
  }

  async recordedExit(jobId: string, attempt: number): Promise<AttemptExit | undefined> {
    const row = this.selectExit.get(jobId, attempt) as { exit: string } | undefined;
    return row && (JSON.parse(row.exit) as AttemptExit);
  }

  async deleteJob(jobId: string): Promise<void> {
    this.deleteAll(jobId);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
