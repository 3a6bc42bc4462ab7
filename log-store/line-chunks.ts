import type { LogLine, LogStream } from './log-store.js';

/**
 * How the SQLite store keeps a job's lines: in chunks, runs of consecutive lines stored as one
 * row. A row per line made SQLite's per-row work (a B-tree cell, six bound values, a result
 * object per line read) most of what a 50 MB log cost; a chunk's lines are written and read with
 * one row's work, and read back without an object walk (one JSON.parse of numbers, then slices).
 *
 * A chunk's body is its lines' numbers, then a line break, then their texts back to back:
 *   `[ts0,s1,k1,t1,a1,n1, s2,k2,t2,a2,n2, …]\n<text 1><text 2>…`
 * per line: seq minus the chunk's first seq (s), stream (k: 0 stdout, 1 stderr, 2 system), ts
 * minus ts0 (t), attempt (a) and the text's length in UTF-16 code units (n, what `slice` counts).
 */

/**
 * A chunk is closed once it holds this many lines… (until then, the job's last chunk takes the
 * next append's lines in: a job printing a line at a time fills its chunks as one printing
 * thousands at once does, and its log costs the store as much, not a row's overhead per line)
 */
export const CHUNK_LINES = 256;
/** …or this many UTF-16 code units of text (a line of the worker's 64 KiB cut is a chunk alone). */
export const CHUNK_TEXT = 32 * 1024;

const STREAMS: readonly LogStream[] = ['stdout', 'stderr', 'system'];
const STREAM_CODE: Record<LogStream, number> = { stdout: 0, stderr: 1, system: 2 };

/** One chunk's lines, as stored. */
export interface Chunk {
  firstSeq: number;
  lastSeq: number;
  lines: number;
  /** UTF-16 code units of text (what the merge and close rules count). */
  text: number;
  body: string;
}

/**
 * Encodes consecutive lines (seq ascending) as one chunk. A text that is not well-formed UTF-16
 * (a lone surrogate) is stored with U+FFFD in its place, as SQLite's UTF-8 would store it, so the
 * lengths stay true.
 */
export function encodeChunk(lines: readonly LogLine[]): Chunk {
  const first = lines[0]!;
  const ts0 = first.ts;
  let meta = `[${ts0}`;
  let text = '';
  for (const l of lines) {
    const t = l.line.isWellFormed() ? l.line : l.line.toWellFormed();
    meta += `,${l.seq - first.seq},${STREAM_CODE[l.stream]},${l.ts - ts0},${l.attempt},${t.length}`;
    text += t;
  }
  return {
    firstSeq: first.seq,
    lastSeq: lines[lines.length - 1]!.seq,
    lines: lines.length,
    text: text.length,
    body: `${meta}]\n${text}`,
  };
}

/** A chunk's lines, in seq order. */
export function decodeChunk(firstSeq: number, body: string): LogLine[] {
  const split = body.indexOf('\n');
  const meta = JSON.parse(body.slice(0, split)) as number[];
  const ts0 = meta[0]!;
  const lines: LogLine[] = [];
  let at = split + 1;
  for (let i = 1; i < meta.length; i += 5) {
    const length = meta[i + 4]!;
    lines.push({
      seq: firstSeq + meta[i]!,
      stream: STREAMS[meta[i + 1]!]!,
      ts: ts0 + meta[i + 2]!,
      line: body.slice(at, at + length),
      attempt: meta[i + 3]!,
    });
    at += length;
  }
  return lines;
}

/** Whether a chunk of `lines` lines and `text` code units of text is closed. */
export const isFull = (lines: number, text: number) => lines >= CHUNK_LINES || text >= CHUNK_TEXT;

/**
 * Cuts lines (seq ascending) into runs for chunks, each closed once full (`isFull`). `open` is
 * a run the first one continues (the job's last chunk, decoded, while not full), if any.
 */
export function chunkRuns(lines: readonly LogLine[], open: readonly LogLine[] = []): LogLine[][] {
  const runs: LogLine[][] = [];
  let run = [...open];
  let text = open.reduce((n, l) => n + l.line.length, 0);
  for (const l of lines) {
    if (run.length > 0 && isFull(run.length, text)) {
      runs.push(run);
      run = [];
      text = 0;
    }
    run.push(l);
    text += l.line.length;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
