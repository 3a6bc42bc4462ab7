import type { LogLine, LogStore } from '../log-store/log-store.js';
import { LineSplitter } from './line-splitter.js';
import type { LogCapState, OutputPosition } from './types.js';

/** The two outputs of a container, as Docker tells them apart. */
export type OutputStream = 'stdout' | 'stderr';

/** Where an attempt's output starts: after the attempt's marker line, if it has one. */
export function startOfOutput(attempt: number, seqBase: number): OutputPosition {
  return {
    seq: attempt > 1 ? seqBase + 1 : 0,
    stdout: 0,
    stderr: 0,
    cap: { storedBytes: 0, firstDropped: 0, droppedLines: 0, droppedBytes: 0 },
  };
}

/**
 * The position after the lines stored past `from` (a checkpoint, or the start of the output):
 * a worker that died stored lines after its last heartbeat reached the server, and the store
 * says which streams they were of. Reads only what was stored after `from`.
 */
export async function advanceOverStored(store: LogStore, jobId: string, from: OutputPosition): Promise<OutputPosition> {
  const position: OutputPosition = { ...from, cap: { ...from.cap } };
  let after = from.seq;
  for (;;) {
    const page = await store.read(jobId, { afterSeq: after, limit: 5000, maxBytes: 4 * 1024 * 1024 });
    if (page.length === 0) return position;
    for (const row of page) {
      if (row.stream === 'system') {
        // The cap's marker: the output was over the cap from this seq on.
        if (position.cap.firstDropped === 0) position.cap.firstDropped = row.seq;
        continue;
      }
      position[row.stream] += 1;
      position.seq = row.seq;
      position.cap.storedBytes += storedLineCost(row.line);
    }
    after = page[page.length - 1]!.seq;
  }
}

export interface OutputSplitters {
  stdout: LineSplitter;
  stderr: LineSplitter;
}

/**
 * Numbers a run's output lines, masks them, applies the log cap, and collects the lines to store.
 * Every read of the output (an attach, the log endpoint) starts from the output's beginning and
 * gets splitters of its own that skip, per stream, the lines numbered already.
 */
export class OutputLines {
  private seq: number;
  private readonly counts: Record<OutputStream, number>;
  private readonly cap: LogCap;
  private batch: LogLine[] = [];
  private current: OutputSplitters | undefined;

  constructor(
    from: OutputPosition,
    maxBytes: number,
    private readonly mask: (line: string) => string,
    private readonly attempt: number,
  ) {
    this.seq = from.seq;
    this.counts = { stdout: from.stdout, stderr: from.stderr };
    this.cap = new LogCap(maxBytes, from.cap);
  }

  /** Splitters for a new read of the whole output; the lines already numbered are skipped. */
  reread(): OutputSplitters {
    this.current = { stdout: this.sink('stdout'), stderr: this.sink('stderr') };
    return this.current;
  }

  /** Lines waiting to be stored. */
  get pending(): number {
    return this.batch.length;
  }

  /** Takes the lines waiting to be stored. */
  take(): LogLine[] {
    const lines = this.batch;
    this.batch = [];
    return lines;
  }

  /** Where the numbering stands (with the lines taken stored, a checkpoint). */
  position(): OutputPosition {
    return { seq: this.seq, stdout: this.counts.stdout, stderr: this.counts.stderr, cap: this.cap.state() };
  }

  /** The output has ended: its last lines (without a newline) and the cap's marker are final. */
  end(): void {
    this.current?.stdout.flush();
    this.current?.stderr.flush();
    const marker = this.cap.marker(this.attempt);
    if (marker) this.batch.push(marker);
  }

  private sink(stream: OutputStream): LineSplitter {
    let skip = this.counts[stream];
    return new LineSplitter((raw) => {
      if (skip > 0) {
        skip -= 1;
        return;
      }
      this.counts[stream] += 1;
      const seq = ++this.seq;
      // Masked before anything else sees the line: secrets never reach the log store.
      const line = this.mask(raw);
      if (this.cap.keep(seq, line)) this.batch.push({ seq, stream, ts: Date.now(), line, attempt: this.attempt });
    });
  }
}

/** What a stored line costs beside its text: its numbers in its chunk's body, and its share of the chunk's row. */
const LINE_BYTES = 21;
/** Pages and overflow pages filled as chunks fill them: about 10% over the bytes they hold. */
const FILL = 1.1;

/**
 * What storing one line costs the log store, in bytes: what the log cap counts, so a job's output
 * grows the store by about the cap at most, whatever its lines look like. Measured on the SQLite
 * store (test/unit/log-cap.test.ts checks it against the real file): lines are kept in chunks
 * of up to 256 lines or 32 KiB of text (log-store/line-chunks.ts), filled whether a job prints a
 * line at a time or thousands at once, so a line costs its text and about 20 bytes (2,000,000
 * empty lines are about 40 MB, not 2 MB).
 */
export function storedLineCost(line: string): number {
  return Math.ceil(Buffer.byteLength(line) * FILL) + LINE_BYTES;
}

/**
 * Counts what the stored lines cost the store against the per-job cap (`HODEI_LOG_MAX_BYTES`), and
 * what is dropped past it.
 */
export class LogCap {
  private storedBytes = 0;
  private firstDropped = 0;
  private droppedLines = 0;
  private droppedBytes = 0;

  constructor(
    private readonly maxBytes: number,
    from?: LogCapState,
  ) {
    if (from)
      ({
        storedBytes: this.storedBytes,
        firstDropped: this.firstDropped,
        droppedLines: this.droppedLines,
        droppedBytes: this.droppedBytes,
      } = from);
  }

  /** Whether line `seq` is within the cap. */
  keep(seq: number, line: string): boolean {
    if (this.firstDropped === 0) {
      const cost = storedLineCost(line);
      if (this.storedBytes + cost <= this.maxBytes) {
        this.storedBytes += cost;
        return true;
      }
      this.firstDropped = seq;
    }
    this.droppedLines += 1;
    this.droppedBytes += Buffer.byteLength(line) + 1;
    return false;
  }

  state(): LogCapState {
    return {
      storedBytes: this.storedBytes,
      firstDropped: this.firstDropped,
      droppedLines: this.droppedLines,
      droppedBytes: this.droppedBytes,
    };
  }

  /** The line that says what was dropped, in the first dropped line's place; none under the cap. */
  marker(attempt: number): LogLine | undefined {
    if (this.firstDropped === 0) return undefined;
    return {
      seq: this.firstDropped,
      stream: 'system',
      ts: Date.now(),
      line:
        `[hodei] log truncated: output over the ${this.maxBytes}-byte log cap was not stored ` +
        `(${this.droppedLines} lines, ${this.droppedBytes} bytes dropped)`,
      attempt,
    };
  }
}
