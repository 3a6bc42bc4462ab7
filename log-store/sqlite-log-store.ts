import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { AttemptExit, LogLine, LogStore, ReadLogOptions, TailLogOptions, TailStartOptions } from './log-store.js';

/** Rows per read of a page bounded by bytes (a 64 KiB line at most each: 6.4 MiB at worst). */
const READ_CHUNK = 100;

/** Rows per insert statement at most (6 values each, far below SQLite's 32,766). */
const ROWS_PER_INSERT = 100;

/**
 * The embedded log store: one SQLite file in WAL mode, so the worker writes while API processes
 * read. Appends are synchronous transactions: the writer naturally slows to the disk's pace
 * instead of buffering output in memory.
 */
export class SqliteLogStore implements LogStore {
  private readonly db: Database.Database;
  /** Multi-row inserts by row count (1 to ROWS_PER_INSERT), prepared on first use. */
  private readonly inserts = new Map<number, Database.Statement>();
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
    // One transaction per batch, and in it one multi-row statement per ROWS_PER_INSERT lines: a
    // statement's run costs far more than binding its values (a 50 MB log is half a million rows).
    const values = new Array<unknown>(ROWS_PER_INSERT * 6);
    this.insertMany = this.db.transaction((jobId: string, lines: readonly LogLine[]) => {
      for (let from = 0; from < lines.length; from += ROWS_PER_INSERT) {
        const rows = Math.min(ROWS_PER_INSERT, lines.length - from);
        values.length = rows * 6;
        for (let i = 0; i < rows; i++) {
          const l = lines[from + i]!;
          const at = i * 6;
          values[at] = jobId;
          values[at + 1] = l.seq;
          values[at + 2] = l.stream;
          values[at + 3] = l.ts;
          values[at + 4] = l.line;
          values[at + 5] = l.attempt;
        }
        this.insertOf(rows).run(values);
      }
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

  private insertOf(rows: number): Database.Statement {
    let statement = this.inserts.get(rows);
    if (!statement) {
      statement = this.db.prepare(
        `INSERT OR IGNORE INTO log_lines (job_id, seq, stream, ts, line, attempt) VALUES ${Array(rows).fill('(?, ?, ?, ?, ?, ?)').join(', ')}`,
      );
      this.inserts.set(rows, statement);
    }
    return statement;
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
    // Bounded by bytes: read in chunks of READ_CHUNK rows (one call into SQLite each, far cheaper
    // than a row at a time) and stop after the chunk where the bytes are reached, cut there.
    const page: LogLine[] = [];
    let bytes = 0;
    let after = afterSeq;
    for (;;) {
      const want = limit < 0 ? READ_CHUNK : Math.min(READ_CHUNK, limit - page.length);
      const rows = (
        options.stream ? select.all(jobId, after, options.stream, want) : select.all(jobId, after, want)
      ) as LogLine[];
      for (const row of rows) {
        page.push(row);
        bytes += Buffer.byteLength(row.line);
        if (bytes >= options.maxBytes) return page;
      }
      if (rows.length < want || page.length === limit) return page;
      after = rows[rows.length - 1]!.seq;
    }
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
