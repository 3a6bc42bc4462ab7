import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LogCap, OutputLines, startOfOutput, storedLineCost } from '../../activities/output-lines.js';
import type { LogLine } from '../../log-store/log-store.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';

describe('LogCap', () => {
  it('keeps lines up to the cap, then counts what it drops; the marker takes the first dropped seq', () => {
    const cap = new LogCap(2 * storedLineCost('abcd'));
    expect(cap.keep(1, 'abcd')).toBe(true);
    expect(cap.keep(2, 'efgh')).toBe(true); // the cap, exactly
    expect(cap.keep(3, 'i')).toBe(false);
    expect(cap.keep(4, '')).toBe(false); // never resumes once over
    const marker = cap.marker(1)!;
    expect(marker).toMatchObject({ seq: 3, stream: 'system', attempt: 1 });
    expect(marker.line).toContain('2 lines, 3 bytes dropped');
  });

  it('has no marker under the cap', () => {
    const cap = new LogCap(100);
    cap.keep(1, 'x');
    expect(cap.marker(1)).toBeUndefined();
  });
});

describe('what the log cap counts: what a line really costs the SQLite store', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'hodei-log-cost-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Bytes the store's file grows by holding `lines` of one job (WAL folded in on close). */
  async function growth(lines: LogLine[]): Promise<number> {
    const file = path.join(dir, `${randomUUID()}.db`);
    const empty = new SqliteLogStore(file);
    await empty.close();
    const base = statSync(file).size;
    const store = new SqliteLogStore(file);
    const jobId = randomUUID();
    for (let i = 0; i < lines.length; i += 500) await store.append(jobId, lines.slice(i, i + 500));
    await store.close();
    return statSync(file).size - base;
  }

  const linesOf = (count: number, text: string): LogLine[] =>
    Array.from({ length: count }, (_, i) => ({ seq: i + 1, stream: 'stdout', ts: Date.now(), line: text, attempt: 1 }));

  it.each([0, 1, 20, 100, 500, 900, 950, 1000, 2000, 3000, 5000, 10_000, 65_536])(
    'lines of %i bytes: the count bounds the file, and is close to it',
    async (width) => {
      const text = 'x'.repeat(width);
      const count = Math.max(100, Math.ceil((2 * 1024 * 1024) / (width + 64)));
      const grew = await growth(linesOf(count, text));
      const counted = count * storedLineCost(text);
      expect(grew).toBeLessThanOrEqual(counted * 1.03);
      expect(counted).toBeLessThanOrEqual(grew * 1.3);
    },
  );

  it('2,000,000 empty lines under a small cap grow the store by about the cap, not 40 MB', async () => {
    const maxBytes = 1024 * 1024;
    const lines = new OutputLines(startOfOutput(1, 0), maxBytes, (l) => l, 1);
    const splitters = lines.reread();
    const newlines = Buffer.alloc(100_000, '\n');
    const stored: LogLine[] = [];
    for (let i = 0; i < 20; i += 1) {
      splitters.stdout.push(newlines);
      stored.push(...lines.take());
    }
    lines.end();
    stored.push(...lines.take());
    const marker = stored.at(-1)!;
    expect(marker.stream).toBe('system');
    const kept = stored.length - 1;
    expect(marker.line).toContain(`(${2_000_000 - kept} lines, ${2_000_000 - kept} bytes dropped)`);
    expect(lines.position().cap.storedBytes).toBeLessThanOrEqual(maxBytes);
    const grew = await growth(stored.sort((a, b) => a.seq - b.seq));
    console.log(`${kept} empty lines kept under a ${maxBytes}-byte cap: the store grew by ${grew} bytes`);
    expect(grew).toBeLessThanOrEqual(maxBytes * 1.05);
    expect(grew).toBeGreaterThan(maxBytes * 0.7);
  });
});
