import pg from 'pg';
import type { AttemptExit, LogLine, LogStore, ReadLogOptions, TailLogOptions, TailStartOptions } from './log-store.js';

/** The channel every append is announced on (`NOTIFY`), with payload `<last seq>:<job id>`. */
export const APPEND_CHANNEL = 'hodei_log_append';
/** `application_name` of each store's one LISTEN connection. */
export const LISTEN_APPLICATION_NAME = 'hodei-log-listen';

const SCHEMA = `
  -- API and worker processes may start at once: one creates the schema, the others wait for it.
  SELECT pg_advisory_xact_lock(hashtext('hodei log store schema'));
  CREATE TABLE IF NOT EXISTS log_lines (
    job_id  text    NOT NULL,
    seq     bigint  NOT NULL,
    stream  text    NOT NULL,
    ts      bigint  NOT NULL,
    line    text    NOT NULL,
    attempt integer NOT NULL DEFAULT 1,
    PRIMARY KEY (job_id, seq)
  );
  -- When each job's log was last written, for the retention sweep.
  CREATE TABLE IF NOT EXISTS log_jobs (
    job_id       text   PRIMARY KEY,
    last_written bigint NOT NULL
  );
  CREATE INDEX IF NOT EXISTS log_jobs_last_written ON log_jobs (last_written);
  -- How each attempt ended, kept once its container is gone.
  CREATE TABLE IF NOT EXISTS log_exits (
    job_id  text    NOT NULL,
    attempt integer NOT NULL,
    exit    jsonb   NOT NULL,
    PRIMARY KEY (job_id, attempt)
  );
`;

const COLUMNS = 'seq, stream, ts, line, attempt';

// One statement, so one transaction: the lines, the job's last write and the announcement, which
// PostgreSQL delivers only once the transaction commits (so a woken reader finds the lines). The
// lines go as one JSON array (JSON.stringify is native; the driver's array literals escape each
// element in JS), PostgreSQL unpacks it into rows.
// (json_to_recordset takes the columns it names from each object and ignores any other key.)
const APPEND = `
  WITH inserted AS (
    INSERT INTO log_lines (job_id, seq, stream, ts, line, attempt)
    SELECT $1::text, seq, stream, ts, line, attempt
    FROM json_to_recordset($2::json) AS l(seq bigint, stream text, ts bigint, line text, attempt integer)
    ON CONFLICT DO NOTHING
  ), touched AS (
    INSERT INTO log_jobs (job_id, last_written) VALUES ($1::text, $3::bigint)
    ON CONFLICT (job_id) DO UPDATE SET last_written = excluded.last_written
  )
  SELECT pg_notify('${APPEND_CHANNEL}', $4::text || ':' || $1::text)`;

// A NULL stream means every stream; a NULL limit means no limit.
const READ = `SELECT ${COLUMNS} FROM log_lines
  WHERE job_id = $1 AND seq > $2 AND ($3::text IS NULL OR stream = $3) ORDER BY seq LIMIT $4`;
// The same, cut where the lines before a line hold maxBytes ($5) bytes or more.
const READ_BOUNDED = `SELECT ${COLUMNS} FROM (
    SELECT ${COLUMNS}, sum(octet_length(line)) OVER (ORDER BY seq) - octet_length(line) AS before FROM log_lines
    WHERE job_id = $1 AND seq > $2 AND ($3::text IS NULL OR stream = $3) ORDER BY seq LIMIT $4
  ) page WHERE before < $5 ORDER BY seq`;
const TAIL = `SELECT ${COLUMNS} FROM log_lines
  WHERE job_id = $1 AND ($2::text IS NULL OR stream = $2) ORDER BY seq DESC LIMIT $3`;
// The seq of the line just before the last $4 lines up to seq $3.
const TAIL_START = `SELECT seq FROM log_lines
  WHERE job_id = $1 AND ($2::text IS NULL OR stream = $2) AND seq <= $3 ORDER BY seq DESC LIMIT 1 OFFSET $4`;

/** Whether PostgreSQL text holds `line` as is: no NUL, no lone surrogate (JSON would send it escaped). */
const storable = (line: string) => !line.includes('\0') && line.isWellFormed();

/** NUL and lone surrogates as U+FFFD (what UTF-8 encoding made of a lone surrogate before). */
const storableText = (line: string) => line.replace(/\0/g, '\uFFFD').toWellFormed();

/** bigint columns (seq, ts: ms since the epoch) as JS numbers: both stay far below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export interface PostgresLogStoreOptions {
  /** Connections of the store's pool (the LISTEN connection is one more). Default: 10. */
  poolSize?: number;
  /** Told of connection errors the store recovers from (an idle connection lost, LISTEN reconnecting). */
  onError?: (err: unknown) => void;
}

/**
 * The log store for several API replicas and worker hosts: one PostgreSQL database that every
 * process reads and writes. Each batch of lines is one transaction that also announces the
 * append with NOTIFY; live tails LISTEN on one connection per store (per process) and read when
 * woken. PostgreSQL text cannot hold NUL, so a NUL in a line is stored as U+FFFD.
 */
export class PostgresLogStore implements LogStore {
  private readonly pool: pg.Pool;
  private readonly listener: AppendListener;

  private constructor(url: string, options: PostgresLogStoreOptions) {
    const onError = options.onError ?? (() => undefined);
    const config = { connectionString: url, types };
    this.pool = new pg.Pool({ ...config, max: options.poolSize ?? 10, application_name: 'hodei-log-store' });
    // An idle connection that breaks (server restart) is dropped from the pool; the next query opens another.
    this.pool.on('error', onError);
    this.listener = new AppendListener({ ...config, application_name: LISTEN_APPLICATION_NAME }, onError);
  }

  /** Connects and creates the schema if it is missing. */
  static async open(url: string, options: PostgresLogStoreOptions = {}): Promise<PostgresLogStore> {
    const store = new PostgresLogStore(url, options);
    try {
      // Several statements in one simple query run as one transaction, holding the advisory lock.
      await store.pool.query(SCHEMA);
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  async append(jobId: string, lines: readonly LogLine[]): Promise<void> {
    if (lines.length === 0) return;
    let last = 0;
    let unfit = false;
    for (const l of lines) {
      if (l.seq > last) last = l.seq;
      if (!storable(l.line)) unfit = true;
    }
    const rows = unfit ? lines.map((l) => (storable(l.line) ? l : { ...l, line: storableText(l.line) })) : lines;
    await this.pool.query({
      name: 'hodei-log-append',
      text: APPEND,
      values: [jobId, JSON.stringify(rows), Date.now(), String(last)],
    });
  }

  async read(jobId: string, options: ReadLogOptions = {}): Promise<LogLine[]> {
    const values = [jobId, options.afterSeq ?? 0, options.stream ?? null, options.limit ?? null];
    const { rows } =
      options.maxBytes === undefined
        ? await this.pool.query<LogLine>({ name: 'hodei-log-read', text: READ, values })
        : await this.pool.query<LogLine>({
            name: 'hodei-log-read-bounded',
            text: READ_BOUNDED,
            values: [...values, options.maxBytes],
          });
    return rows;
  }

  async tail(jobId: string, count: number, options: TailLogOptions = {}): Promise<LogLine[]> {
    const { rows } = await this.pool.query<LogLine>({
      name: 'hodei-log-tail',
      text: TAIL,
      values: [jobId, options.stream ?? null, count],
    });
    return rows.reverse();
  }

  async tailStart(jobId: string, count: number, options: TailStartOptions = {}): Promise<number> {
    const { rows } = await this.pool.query<{ seq: number }>({
      name: 'hodei-log-tail-start',
      text: TAIL_START,
      values: [jobId, options.stream ?? null, options.untilSeq ?? Number.MAX_SAFE_INTEGER, count],
    });
    return rows[0]?.seq ?? 0;
  }

  async lastSeq(jobId: string): Promise<number> {
    const { rows } = await this.pool.query<{ seq: number | null }>(
      'SELECT max(seq) AS seq FROM log_lines WHERE job_id = $1',
      [jobId],
    );
    return rows[0]?.seq ?? 0;
  }

  async jobsWrittenBefore(ts: number, limit: number): Promise<string[]> {
    const { rows } = await this.pool.query<{ job_id: string }>(
      'SELECT job_id FROM log_jobs WHERE last_written < $1 ORDER BY last_written LIMIT $2',
      [ts, limit],
    );
    return rows.map((r) => r.job_id);
  }

  // AttemptExits: how each attempt ended, in the log_exits table beside its lines.

  async recordExit(jobId: string, attempt: number, exit: AttemptExit): Promise<void> {
    await this.pool.query(
      'INSERT INTO log_exits (job_id, attempt, exit) VALUES ($1, $2, $3) ON CONFLICT (job_id, attempt) DO UPDATE SET exit = excluded.exit',
      [jobId, attempt, JSON.stringify(exit)],
    );
  }

  async recordedExit(jobId: string, attempt: number): Promise<AttemptExit | undefined> {
    const { rows } = await this.pool.query<{ exit: AttemptExit }>(
      'SELECT exit FROM log_exits WHERE job_id = $1 AND attempt = $2',
      [jobId, attempt],
    );
    return rows[0]?.exit;
  }

  async deleteJob(jobId: string): Promise<void> {
    await this.pool.query(
      `WITH lines AS (DELETE FROM log_lines WHERE job_id = $1), exits AS (DELETE FROM log_exits WHERE job_id = $1)
       DELETE FROM log_jobs WHERE job_id = $1`,
      [jobId],
    );
  }

  watch(jobId: string, onAppend: () => void): () => void {
    return this.listener.watch(jobId, onAppend);
  }

  async close(): Promise<void> {
    await this.listener.close();
    await this.pool.end();
  }
}

/** How long the LISTEN connection waits before connecting again after losing the server, ms. */
const RECONNECT_MS = 500;

/**
 * One LISTEN connection shared by every watched job of a store, opened on the first watch. When
 * it is lost it connects again, and then wakes every watcher once, since appends in between were
 * announced to no one.
 */
class AppendListener {
  private readonly watchers = new Map<string, Set<() => void>>();
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly onError: (err: unknown) => void,
  ) {}

  watch(jobId: string, onAppend: () => void): () => void {
    let callbacks = this.watchers.get(jobId);
    if (!callbacks) {
      callbacks = new Set();
      this.watchers.set(jobId, callbacks);
    }
    callbacks.add(onAppend);
    this.connect();
    return () => {
      callbacks.delete(onAppend);
      if (callbacks.size === 0 && this.watchers.get(jobId) === callbacks) this.watchers.delete(jobId);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    await this.connecting;
    const client = this.client;
    this.client = undefined;
    await client?.end();
  }

  private connect(): void {
    if (this.client || this.connecting || this.retry || this.closed) return;
    const client = new pg.Client(this.config);
    client.on('notification', (msg) => this.announced(msg.payload));
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    this.connecting = (async () => {
      try {
        await client.connect();
        await client.query(`LISTEN ${APPEND_CHANNEL}`);
      } catch (err) {
        this.onError(err);
        await client.end().catch(() => undefined);
        this.reconnectLater();
        return;
      } finally {
        this.connecting = undefined;
      }
      if (this.closed) {
        await client.end();
        return;
      }
      this.client = client;
      for (const callbacks of this.watchers.values()) for (const wake of callbacks) wake();
    })();
  }

  private lost(client: pg.Client, err?: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    if (err) this.onError(err);
    client.end().catch(() => undefined);
    this.reconnectLater();
  }

  private reconnectLater(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.watchers.size > 0) this.connect();
    }, RECONNECT_MS);
    this.retry.unref();
  }

  private announced(payload: string | undefined): void {
    const jobId = payload?.slice(payload.indexOf(':') + 1);
    const callbacks = jobId === undefined ? undefined : this.watchers.get(jobId);
    if (callbacks) for (const wake of callbacks) wake();
  }
}
