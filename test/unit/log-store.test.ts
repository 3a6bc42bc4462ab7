import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LogLine } from '../../log-store/log-store.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';

let dir: string;
let store: SqliteLogStore;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'hodei-logs-'));
  store = SqliteLogStore.inDataDir(dir);
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const line = (seq: number, text = `line ${seq}`): LogLine => ({ seq, stream: 'stdout', ts: 1000 + seq, line: text, attempt: 1 });

describe('SqliteLogStore', () => {
  it('returns lines in seq order, per job', async () => {
    await store.append('a', [line(2), line(1)]);
    await store.append('b', [line(1, 'other')]);
    expect((await store.read('a')).map((l) => l.line)).toEqual(['line 1', 'line 2']);
    expect(await store.lastSeq('a')).toBe(2);
    expect(await store.lastSeq('missing')).toBe(0);
  });

  it('writes idempotently by (job id, seq)', async () => {
    await store.append('a', [line(1), line(2)]);
    await store.append('a', [line(2, 'again'), line(3)]);
    expect((await store.read('a')).map((l) => l.line)).toEqual(['line 1', 'line 2', 'line 3']);
  });

  it('pages with afterSeq and limit', async () => {
    await store.append('a', [1, 2, 3, 4, 5].map((n) => line(n)));
    expect((await store.read('a', { afterSeq: 2, limit: 2 })).map((l) => l.seq)).toEqual([3, 4]);
  });

  it('is durable: a second store on the same file sees the lines', async () => {
    await store.append('a', [line(1)]);
    const other = SqliteLogStore.inDataDir(dir);
    expect(await other.read('a')).toEqual([line(1)]);
    await other.close();
  });
});
