import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chunkRuns, decodeChunk, encodeChunk, isFull } from './line-chunks.js';
import type { AttemptExit, LogLine, LogStore, ReadLogOptions, TailLogOptions, TailStartOptions } from './log-store.js';
import { WalCheckpointer, WRITER_CHECKPOINT_PAGES } from './wal-checkpointer.js';

/** Chunks per read of a page (CHUNK_LINES lines or about CHUNK_TEXT of text each). */
const READ_CHUNKS = 8;

interface ChunkRow {
  first_seq: number;
  last_seq: number;
  lines: number;
  text: number;
}

/**
 * The embedded log store: one SQLite file in WAL mode, so the worker writes while API processes
 * read. A job's lines are kept in chunks of consecutive lines, one row each (line-chunks.ts).
 * Appends are synchronous transactions: the writer naturally slows to the disk's pace instead of
 * buffering output in memory. The WAL is checkpointed from a thread of its own, told what was
 * written (wal-checkpointer.ts).
 */
export class SqliteLogStore implements LogStore {
  private readonly db: Database.Database;
  private readonly selectLastChunk: Database.Statement;
  private readonly selectBody: Database.Statement;
  private readonly selectStartChunk: Database.Statement;
  private readonly selectChunksFrom: Database.Statement;
  private readonly selectChunksBefore: Database.Statement;
  private readonly upsertChunk: Database.Statement;
  private readonly touch: Database.Statement;
  /** Runs reads in one transaction: every statement sees the same state of the job's chunks. */
  private readonly snapshot: <T>(read: () => T) => T;
  private readonly appendBatch: Database.Transaction<(jobId: string, lines: readonly LogLine[]) => void>;
  private readonly selectWrittenBefore: Database.Statement;
  private readonly deleteAll: (jobId: string) => void;
  private readonly upsertExit: Database.Statement;
  private readonly selectExit: Database.Statement;
  private readonly checkpointer: WalCheckpointer;

  constructor(file: string) {
    // The data dir holds every job's output: this user's only.
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      -- A job's lines, a chunk of consecutive ones per row (line-chunks.ts): first_seq to
      -- last_seq, \`lines\` of them, \`text\` UTF-16 code units of text, encoded in body.
      CREATE TABLE IF NOT EXISTS log_chunks (
        job_id    TEXT    NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq  INTEGER NOT NULL,
        lines     INTEGER NOT NULL,
        text      INTEGER NOT NULL,
        body      TEXT    NOT NULL,
        PRIMARY KEY (job_id, first_seq)
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
    const meta = 'first_seq, last_seq, lines, text';
    this.selectLastChunk = this.db.prepare(
      `SELECT ${meta} FROM log_chunks WHERE job_id = ? ORDER BY first_seq DESC LIMIT 1`,
    );
    this.selectBody = this.db.prepare('SELECT body FROM log_chunks WHERE job_id = ? AND first_seq = ?').pluck();
    // The chunk that may hold the line after `seq`: the last one starting at or before it.
    this.selectStartChunk = this.db
      .prepare('SELECT first_seq FROM log_chunks WHERE job_id = ? AND first_seq <= ? ORDER BY first_seq DESC LIMIT 1')
      .pluck();
    this.selectChunksFrom = this.db.prepare(
      'SELECT first_seq, last_seq, body FROM log_chunks WHERE job_id = ? AND first_seq >= ? ORDER BY first_seq LIMIT ?',
    );
    // Newest first, without their bodies: tails count lines back, and decode only where they stop.
    this.selectChunksBefore = this.db.prepare(
      `SELECT ${meta} FROM log_chunks WHERE job_id = ? AND first_seq <= ? ORDER BY first_seq DESC LIMIT ?`,
    );
    this.upsertChunk = this.db.prepare(
      `INSERT INTO log_chunks (job_id, first_seq, last_seq, lines, text, body) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (job_id, first_seq) DO UPDATE SET
         last_seq = excluded.last_seq, lines = excluded.lines, text = excluded.text, body = excluded.body`,
    );
    this.touch = this.db.prepare(
      'INSERT INTO log_jobs (job_id, last_written) VALUES (?, ?) ON CONFLICT (job_id) DO UPDATE SET last_written = excluded.last_written',
    );
    this.appendBatch = this.db.transaction((jobId: string, lines: readonly LogLine[]) => {
      this.store(jobId, lines);
      this.touch.run(jobId, Date.now());
    });
    // A read of several statements (chunk after chunk) in one read transaction: an append that
    // extends the job's last chunk between two of them could otherwise hide its new lines.
    const inSnapshot = this.db.transaction((read: () => unknown) => read());
    this.snapshot = <T>(read: () => T) => inSnapshot(read) as T;
    this.selectWrittenBefore = this.db.prepare(
      'SELECT job_id FROM log_jobs WHERE last_written < ? ORDER BY last_written LIMIT ?',
    );
    this.deleteAll = this.db.transaction((jobId: string) => {
      this.db.prepare('DELETE FROM log_chunks WHERE job_id = ?').run(jobId);
      this.db.prepare('DELETE FROM log_jobs WHERE job_id = ?').run(jobId);
      this.db.prepare('DELETE FROM log_exits WHERE job_id = ?').run(jobId);
    });
    this.upsertExit = this.db.prepare(
      'INSERT INTO log_exits (job_id, attempt, exit) VALUES (?, ?, ?) ON CONFLICT (job_id, attempt) DO UPDATE SET exit = excluded.exit',
    );
    this.selectExit = this.db.prepare('SELECT exit FROM log_exits WHERE job_id = ? AND attempt = ?');
    this.migrateLineRows();
    this.db.pragma(`wal_autocheckpoint = ${WRITER_CHECKPOINT_PAGES}`);
    this.checkpointer = new WalCheckpointer(file);
  }

  /**
   * Stores the lines past the job's last stored seq (one job's lines are appended in seq order:
   * any at or below it were stored already, and the first copy stands), filling the job's last
   * chunk until it is full, then new chunks. Runs inside a write transaction.
   */
  private store(jobId: string, batch: readonly LogLine[]): void {
    const sorted = batch.every((l, i) => i === 0 || batch[i - 1]!.seq < l.seq)
      ? batch
      : [...batch].sort((a, b) => a.seq - b.seq);
    const last = this.selectLastChunk.get(jobId) as ChunkRow | undefined;
    let after = last?.last_seq ?? 0;
    const fresh: LogLine[] = [];
    for (const l of sorted) {
      if (l.seq <= after) continue;
      fresh.push(l);
      after = l.seq;
    }
    if (fresh.length === 0) return;
    const open =
      last && !isFull(last.lines, last.text)
        ? decodeChunk(last.first_seq, this.selectBody.get(jobId, last.first_seq) as string)
        : [];
    for (const run of chunkRuns(fresh, open)) {
      const c = encodeChunk(run);
      this.upsertChunk.run(jobId, c.firstSeq, c.lastSeq, c.lines, c.text, c.body);
    }
  }

  /**
   * Stores kept a row per line before chunks (a table log_lines): its lines move into chunks,
   * once, on the first open by a version with chunks; the table is dropped after.
   */
  private migrateLineRows(): void {
    const legacy = () =>
      this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_lines'").get() !== undefined;
    if (!legacy()) return;
    const move = this.db.transaction(() => {
      if (!legacy()) return; // another process moved them meanwhile
      this.db.exec('INSERT OR IGNORE INTO log_jobs SELECT job_id, MAX(ts) FROM log_lines GROUP BY job_id');
      const page = this.db.prepare(
        'SELECT job_id, seq, stream, ts, line, attempt FROM log_lines WHERE (job_id, seq) > (?, ?) ORDER BY job_id, seq LIMIT 5000',
      );
      let at: [string, number] = ['', 0];
      for (;;) {
        const rows = page.all(...at) as Array<LogLine & { job_id: string }>;
        if (rows.length === 0) break;
        for (let from = 0; from < rows.length;) {
          const jobId = rows[from]!.job_id;
          let to = from;
          while (to < rows.length && rows[to]!.job_id === jobId) to++;
          this.store(
            jobId,
            rows.slice(from, to).map(({ seq, stream, ts, line, attempt }) => ({ seq, stream, ts, line, attempt })),
          );
          from = to;
        }
        const lastRow = rows[rows.length - 1]!;
        at = [lastRow.job_id, lastRow.seq];
      }
      this.db.exec('DROP TABLE log_lines');
    });
    // A large store takes a while to move: a process opening it meanwhile (the API beside the
    // worker) waits for the move to end, busy_timeout after busy_timeout, then finds it done.
    for (;;) {
      try {
        move.immediate();
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
      }
    }
  }

  /** Opens the default store file under the data dir. */
  static inDataDir(dataDir: string): SqliteLogStore {
    return new SqliteLogStore(path.join(dataDir, 'logs.db'));
  }

  async append(jobId: string, lines: readonly LogLine[]): Promise<void> {
    // Immediate: the last stored seq is read and written past in one write transaction.
    if (lines.length === 0) return;
    this.appendBatch.immediate(jobId, lines);
    let text = 0;
    for (const l of lines) text += l.line.length;
    this.checkpointer.wrote(text);
  }

  async read(jobId: string, options: ReadLogOptions = {}): Promise<LogLine[]> {
    return this.snapshot(() => this.readPage(jobId, options));
  }

  private readPage(jobId: string, options: ReadLogOptions): LogLine[] {
    const afterSeq = options.afterSeq ?? 0;
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    const page: LogLine[] = [];
    if (limit <= 0) return page;
    let bytes = 0;
    let from = (this.selectStartChunk.get(jobId, afterSeq) as number | undefined) ?? 0;
    for (;;) {
      const chunks = this.selectChunksFrom.all(jobId, from, READ_CHUNKS) as Array<{
        first_seq: number;
        last_seq: number;
        body: string;
      }>;
      for (const chunk of chunks) {
        if (chunk.last_seq <= afterSeq) continue;
        // Bytes are counted line by line only in a chunk where the page may end by them: one
        // whose whole body (its text, and a few bytes more) still fits counts at once.
        const whole = maxBytes === Number.POSITIVE_INFINITY ? 0 : Buffer.byteLength(chunk.body);
        const byLine = bytes + whole >= maxBytes;
        for (const l of decodeChunk(chunk.first_seq, chunk.body)) {
          if (l.seq <= afterSeq || (options.stream && l.stream !== options.stream)) continue;
          page.push(l);
          // A line is in the page while the lines before it hold fewer than maxBytes.
          if (byLine) bytes += Buffer.byteLength(l.line);
          if (page.length >= limit || bytes >= maxBytes) return page;
        }
        if (!byLine) bytes += whole;
      }
      if (chunks.length < READ_CHUNKS) return page;
      from = chunks[chunks.length - 1]!.first_seq + 1;
    }
  }

  /**
   * Walks the job's lines from its newest back (of one stream, up to a seq), calling `visit` per
   * line until it returns false; a chunk wholly taken by `skipWhole` (given its line count) is
   * passed over without decoding.
   */
  private walkBack(
    jobId: string,
    options: TailStartOptions,
    visit: (l: LogLine) => boolean,
    skipWhole?: (lines: number) => boolean,
  ): void {
    this.snapshot(() => {
      const until = options.untilSeq ?? Number.MAX_SAFE_INTEGER;
      let before = until;
      for (;;) {
        const chunks = this.selectChunksBefore.all(jobId, before, READ_CHUNKS) as ChunkRow[];
        for (const chunk of chunks) {
          if (!options.stream && chunk.last_seq <= until && skipWhole?.(chunk.lines)) continue;
          const lines = decodeChunk(chunk.first_seq, this.selectBody.get(jobId, chunk.first_seq) as string);
          for (let i = lines.length - 1; i >= 0; i--) {
            const l = lines[i]!;
            if (l.seq > until || (options.stream && l.stream !== options.stream)) continue;
            if (!visit(l)) return;
          }
        }
        if (chunks.length < READ_CHUNKS) return;
        before = chunks[chunks.length - 1]!.first_seq - 1;
      }
    });
  }

  async tail(jobId: string, count: number, options: TailLogOptions = {}): Promise<LogLine[]> {
    const lines: LogLine[] = [];
    if (count > 0)
      this.walkBack(jobId, options, (l) => {
        lines.push(l);
        return lines.length < count;
      });
    return lines.reverse();
  }

  async tailStart(jobId: string, count: number, options: TailStartOptions = {}): Promise<number> {
    // The seq of the line just before the last `count`: chunks of the last `count` lines are
    // counted by their line counts; only the chunk where the count ends is decoded.
    let left = count;
    let start = 0;
    this.walkBack(
      jobId,
      options,
      (l) => {
        if (left === 0) {
          start = l.seq;
          return false;
        }
        left -= 1;
        return true;
      },
      (lines) => {
        if (left < lines) return false;
        left -= lines;
        return true;
      },
    );
    return start;
  }

  async lastSeq(jobId: string): Promise<number> {
    return (this.selectLastChunk.get(jobId) as ChunkRow | undefined)?.last_seq ?? 0;
  }

  async jobsWrittenBefore(ts: number, limit: number): Promise<string[]> {
    return (this.selectWrittenBefore.all(ts, limit) as Array<{ job_id: string }>).map((r) => r.job_id);
  }

  // AttemptExits: how each attempt ended, in the log_exits table beside its lines.

  async recordExit(jobId: string, attempt: number, exit: AttemptExit): Promise<void> {
    this.upsertExit.run(jobId, attempt, JSON.stringify(exit));
    this.checkpointer.wrote(1);
  }

  async recordedExit(jobId: string, attempt: number): Promise<AttemptExit | undefined> {
    const row = this.selectExit.get(jobId, attempt) as { exit: string } | undefined;
    return row && (JSON.parse(row.exit) as AttemptExit);
  }

  async deleteJob(jobId: string): Promise<void> {
    this.deleteAll(jobId);
    this.checkpointer.wrote(1);
  }

  async close(): Promise<void> {
    await this.checkpointer.stop();
    this.db.close();
  }
}
