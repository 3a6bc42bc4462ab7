/** Which output a log line came from; `system` marks the platform's own lines. */
export type LogStream = 'stdout' | 'stderr' | 'system';

/** One stored line of a job's output. */
export interface LogLine {
  /** 1-based position in the job's output; unique per job, the idempotency key of writes. */
  seq: number;
  stream: LogStream;
  /** When the platform read the line, in ms since the epoch. */
  ts: number;
  /**
   * The line's text, without its line break. Stored as is, except that a store whose database
   * cannot hold NUL characters (PostgreSQL) keeps each as U+FFFD.
   */
  line: string;
  /** Which attempt of the job printed it (1 for the first). */
  attempt: number;
}

export interface ReadLogOptions {
  /** Only lines with seq greater than this. Default: 0 (from the start). */
  afterSeq?: number;
  /** At most this many lines. Default: all. */
  limit?: number;
  /** Only lines of this stream. Default: every stream. */
  stream?: LogStream;
  /**
   * Also stop once the lines read hold this many bytes of text: a line is in the page while the
   * lines before it hold fewer, so a page is never empty while lines remain. Bounds the memory of
   * a page of long lines. A page this cuts short is no sign of the end: read until one is empty.
   * Default: no bound.
   */
  maxBytes?: number;
}

/**
 * How an attempt's script ended, recorded by the run activity before it removes the container:
 * the one durable trace of the exit once the container is gone (a run retried after its worker
 * died between the removal and its report reads it back).
 */
export interface AttemptExit {
  exitCode: number;
  oomKilled: boolean;
  startedAt: string;
  finishedAt: string;
  /** Highest seq stored for the attempt when it ended. */
  lastSeq: number;
}

export interface TailLogOptions {
  /** Only lines of this stream. Default: every stream. */
  stream?: LogStream;
}

export interface TailStartOptions extends TailLogOptions {
  /** Only lines up to this seq count (the last line when the tail was asked for). Default: every line. */
  untilSeq?: number;
}

/**
 * A job's lines of output, written by the worker while the job runs and read by the API.
 * Writes are idempotent by (job id, seq), so a retried activity can write a line again safely.
 * One job's lines are appended in seq order, so once a line is readable every line before it
 * is too (live tails rely on this: see log-tail.ts); a store may take a line at or below the
 * job's highest stored seq as stored already (the SQLite store does: it keeps lines in chunks).
 */
export interface LogLines {
  append(jobId: string, lines: readonly LogLine[]): Promise<void>;
  /** Lines in seq order. */
  read(jobId: string, options?: ReadLogOptions): Promise<LogLine[]>;
  /** The last `count` lines, in seq order. */
  tail(jobId: string, count: number, options?: TailLogOptions): Promise<LogLine[]>;
  /**
   * Where the last `count` lines begin, without reading them: the seq after which they follow
   * (to `read` from, page by page), 0 when there are no more than `count`.
   */
  tailStart(jobId: string, count: number, options?: TailStartOptions): Promise<number>;
  /** Highest stored seq of the job, 0 when it has none. */
  lastSeq(jobId: string): Promise<number>;
  /** Up to `limit` jobs whose newest line was stored before `ts` (ms since the epoch). */
  jobsWrittenBefore(ts: number, limit: number): Promise<string[]>;
  /**
   * Calls `onAppend` soon after new lines of the job are stored, by this process or any other,
   * until the returned function is called. Optional: live tails poll a store without it often,
   * and a store with it only now and then, as a safety net (see log-tail.ts).
   */
  watch?(jobId: string, onAppend: () => void): () => void;
}

/**
 * How each attempt of a job ended (`AttemptExit`), written by the run activity just before it
 * removes the container and read back by a retry of it. Kept beside the job's lines, in the same
 * database, so that they are written, retained and deleted together.
 */
export interface AttemptExits {
  /** Records how the job's attempt ended; recording it again replaces it. */
  recordExit(jobId: string, attempt: number, exit: AttemptExit): Promise<void>;
  /** How the job's attempt ended, if recorded. */
  recordedExit(jobId: string, attempt: number): Promise<AttemptExit | undefined>;
}

/**
 * The durable store of job output: each job's lines (`LogLines`) and how its attempts exited
 * (`AttemptExits`), one backend for both (SQLite by default, PostgreSQL for several machines).
 */
export interface LogStore extends LogLines, AttemptExits {
  /** Deletes every line of the job, and its recorded exits. */
  deleteJob(jobId: string): Promise<void>;
  close(): Promise<void>;
}
