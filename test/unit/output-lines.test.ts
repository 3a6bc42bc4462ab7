import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  advanceOverStored,
  OutputLines,
  startOfOutput,
  storedLineCost,
  type OutputStream,
} from '../../activities/output-lines.js';
import type { OutputPosition } from '../../activities/types.js';
import type { LogLine } from '../../log-store/log-store.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';

// How a run resumes the numbering of a container's output after its worker died: a first read
// (an attach) numbers the output in one interleaving of stdout and stderr and stores it in
// batches, heartbeating a checkpoint after each; it dies with batches stored past the checkpoint
// the server last got. The retry reads the whole output again (the log endpoint) in another
// interleaving, from that checkpoint advanced over the rows stored after it.

let dir: string;
let store: SqliteLogStore;
const jobId = 'job';

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'hodei-output-lines-'));
  store = SqliteLogStore.inDataDir(dir);
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A deterministic pseudo-random sequence (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Output = Record<OutputStream, string[]>;

/** The output's lines in one interleaving: each stream in its own order, mixed at random. */
function interleave(output: Output, seed: number): Array<[OutputStream, string]> {
  const next = random(seed);
  const at = { stdout: 0, stderr: 0 };
  const mixed: Array<[OutputStream, string]> = [];
  while (at.stdout < output.stdout.length || at.stderr < output.stderr.length) {
    const stream: OutputStream =
      at.stderr >= output.stderr.length || (at.stdout < output.stdout.length && next() < 0.5) ? 'stdout' : 'stderr';
    mixed.push([stream, output[stream][at[stream]++]!]);
  }
  return mixed;
}

/**
 * One read of the whole output from `from`, storing every `batch` lines and returning the
 * checkpoint after each store; stops (the worker dies) after `stores` stores.
 */
async function read(
  from: OutputPosition,
  order: Array<[OutputStream, string]>,
  opts: { maxBytes: number; batch: number; stores?: number },
) {
  const lines = new OutputLines(from, opts.maxBytes, (l) => l, 1);
  const splitters = lines.reread();
  const checkpoints: OutputPosition[] = [];
  const store1 = async () => {
    const position = lines.position();
    await store.append(jobId, lines.take());
    checkpoints.push(position);
  };
  let count = 0;
  for (const [stream, line] of order) {
    splitters[stream].push(Buffer.from(`${line}\n`));
    if (++count % opts.batch === 0) {
      await store1();
      if (checkpoints.length === opts.stores) return checkpoints;
    }
  }
  lines.end();
  await store1();
  return checkpoints;
}

const output = (lines: number, width = 10): Output => ({
  stdout: Array.from({ length: lines }, (_, i) => `o${i + 1}`.padEnd(width, '.')),
  stderr: Array.from({ length: lines }, (_, i) => `e${i + 1}`.padEnd(width, '.')),
});

/** What the store holds, checked: seqs 1…n, each stream a prefix of its output in order. */
async function storedLog(out: Output): Promise<{ rows: LogLine[]; kept: Output; marker?: LogLine }> {
  const rows = await store.read(jobId);
  expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
  const kept = {
    stdout: rows.filter((r) => r.stream === 'stdout').map((r) => r.line),
    stderr: rows.filter((r) => r.stream === 'stderr').map((r) => r.line),
  };
  expect(kept.stdout).toEqual(out.stdout.slice(0, kept.stdout.length));
  expect(kept.stderr).toEqual(out.stderr.slice(0, kept.stderr.length));
  const markers = rows.filter((r) => r.stream === 'system');
  expect(markers.length).toBeLessThanOrEqual(1);
  if (markers[0]) expect(rows.at(-1)).toBe(markers[0]);
  return { rows, kept, marker: markers[0] };
}

describe('resuming the numbering of a container output', () => {
  it('numbers every line of each stream exactly once, whatever checkpoint the retry starts from', async () => {
    const out = output(300);
    for (const [stores, resumeAt] of [
      [5, 2],
      [5, 4],
      [1, 0],
      [12, 11],
      [12, 0],
    ] as const) {
      await store.deleteJob(jobId);
      const first = await read(startOfOutput(1, 0), interleave(out, 1), { maxBytes: 1e9, batch: 37, stores });
      const from = resumeAt === 0 ? startOfOutput(1, 0) : first[resumeAt - 1]!;
      const resumed = await advanceOverStored(store, jobId, from);
      // The store was ahead of the checkpoint: the rows after it count too.
      expect(resumed.seq).toBe(stores * 37);
      await read(resumed, interleave(out, 2), { maxBytes: 1e9, batch: 50 });
      const { rows, kept, marker } = await storedLog(out);
      expect(kept).toEqual(out);
      expect(rows).toHaveLength(600);
      expect(marker).toBeUndefined();
    }
  });

  it('past the log cap: one marker in the first dropped place, with exact counts, wherever the worker died', async () => {
    // Lines of two widths, so what fits under the cap depends on the interleaving.
    const out = { stdout: output(300).stdout, stderr: output(300, 3).stderr };
    const bytes = (lines: string[]) => lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    const cost = (lines: string[]) => lines.reduce((n, l) => n + storedLineCost(l), 0);
    const total = { lines: 600, bytes: bytes(out.stdout) + bytes(out.stderr) };
    // About 30 lines' worth of what the store spends on them.
    const maxBytes = 2500;
    // Died under the cap; over it with the checkpoint under it; over it with the checkpoint over
    // it; after the whole output and the marker were stored (the report was lost).
    for (const [stores, resumeAt] of [
      [3, 1],
      [9, 3],
      [12, 10],
      [99, 2],
    ] as const) {
      await store.deleteJob(jobId);
      const first = await read(startOfOutput(1, 0), interleave(out, 3), { maxBytes, batch: 37, stores });
      const resumed = await advanceOverStored(store, jobId, first[resumeAt - 1]!);
      await read(resumed, interleave(out, 4), { maxBytes, batch: 50 });
      const { rows, kept, marker } = await storedLog(out);
      const keptLines = kept.stdout.length + kept.stderr.length;
      const keptBytes = bytes(kept.stdout) + bytes(kept.stderr);
      const keptCost = cost(kept.stdout) + cost(kept.stderr);
      expect(keptCost).toBeLessThanOrEqual(maxBytes);
      expect(keptCost).toBeGreaterThan(maxBytes - storedLineCost(out.stdout[0]!));
      expect(marker?.seq).toBe(keptLines + 1);
      expect(rows).toHaveLength(keptLines + 1);
      expect(marker?.line).toContain(`(${total.lines - keptLines} lines, ${total.bytes - keptBytes} bytes dropped)`);
    }
  });

  it('a retry after the marker was stored stores nothing new, even where a short line would still fit', async () => {
    const out = { stdout: ['aaaaaaaaaa', 'aaaaaaaaaa', 'aaaaaaaaaa'], stderr: ['bb', 'bb', 'bb'] };
    // Two stdout lines fit, the third does not, and a (cheaper) stderr line would.
    const maxBytes = 2 * storedLineCost('aaaaaaaaaa') + storedLineCost('bb');
    expect(storedLineCost('bb')).toBeLessThan(storedLineCost('aaaaaaaaaa'));
    const stdoutFirst = [
      ...out.stdout.map((l) => ['stdout', l] as [OutputStream, string]),
      ...out.stderr.map((l) => ['stderr', l] as [OutputStream, string]),
    ];
    await read(startOfOutput(1, 0), stdoutFirst, { maxBytes, batch: 2 });
    const before = await store.read(jobId);
    expect(before.map((r) => r.line)).toEqual([
      'aaaaaaaaaa',
      'aaaaaaaaaa',
      `[hodei] log truncated: output over the ${maxBytes}-byte log cap was not stored (4 lines, 20 bytes dropped)`,
    ]);
    const resumed = await advanceOverStored(store, jobId, startOfOutput(1, 0));
    expect(resumed).toMatchObject({ seq: 2, stdout: 2, stderr: 0, cap: { firstDropped: 3 } });
    await read(resumed, [...stdoutFirst.slice(3), ...stdoutFirst.slice(0, 3)], { maxBytes, batch: 2 });
    expect(await store.read(jobId)).toEqual(before);
  });

  it('continues a later attempt after its marker line', async () => {
    await store.append(jobId, [
      { seq: 1, stream: 'stdout', ts: 1, line: 'first attempt', attempt: 1 },
      { seq: 2, stream: 'system', ts: 1, line: '[hodei] attempt 2 started', attempt: 2 },
    ]);
    const start = startOfOutput(2, 1);
    expect(await advanceOverStored(store, jobId, start)).toEqual(start);
    const lines = new OutputLines(start, 1e9, (l) => l, 2);
    lines.reread().stderr.push(Buffer.from('x\n'));
    expect(lines.take()).toMatchObject([{ seq: 3, stream: 'stderr', line: 'x', attempt: 2 }]);
  });

  it('masks lines before counting them against the cap', () => {
    // Room for '***' only: 'secret' unmasked would not fit.
    const maxBytes = storedLineCost('***');
    expect(storedLineCost('secret')).toBeGreaterThan(maxBytes);
    const lines = new OutputLines(startOfOutput(1, 0), maxBytes, (l) => l.replaceAll('secret', '***'), 1);
    lines.reread().stdout.push(Buffer.from('secret\nab\n'));
    expect(lines.take().map((l) => l.line)).toEqual(['***']);
    expect(lines.position().cap).toMatchObject({
      storedBytes: maxBytes,
      firstDropped: 2,
      droppedLines: 1,
      droppedBytes: 3,
    });
  });
});
