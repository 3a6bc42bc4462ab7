import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LogLine } from '../../log-store/log-store.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';
import { WRITER_CHECKPOINT_PAGES } from '../../log-store/wal-checkpointer.js';
import { describeLogStoreContract } from '../support/log-store-contract.js';

// The embedded default: one SQLite file in a fresh data dir per test.
describeLogStoreContract('SqliteLogStore', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hodei-logs-'));
  return {
    open: async () => SqliteLogStore.inDataDir(dir),
    destroy: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

describe('SqliteLogStore: its own storage', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'hodei-logs-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('checkpoints its WAL from a thread of its own, off the writing one, and stops it on close', async () => {
    const file = path.join(dir, 'logs.db');
    const store = new SqliteLogStore(file);
    const text = 'x'.repeat(1000);
    // 4 MB of lines: past SQLite's default auto-checkpoint (1000 pages), far below the writer's own.
    const lines: LogLine[] = Array.from({ length: 4000 }, (_, i) => ({
      seq: i + 1,
      stream: 'stdout',
      ts: 1_000 + i,
      line: text,
      attempt: 1,
    }));
    for (let at = 0; at < lines.length; at += 200) await store.append('job', lines.slice(at, at + 200));
    expect(4_000_000 / 4096).toBeLessThan(WRITER_CHECKPOINT_PAGES);
    // The lines reach the database file itself (not only the WAL) without the writer's checkpoint.
    const deadline = Date.now() + 10_000;
    while (statSync(file).size < 4_000_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(statSync(file).size).toBeGreaterThanOrEqual(4_000_000);
    expect(await store.read('job')).toEqual(lines);
    await store.close();
    // Closed whole: the last connection's close checkpoints and removes the WAL.
    expect(() => statSync(`${file}-wal`)).toThrow(/ENOENT/);
  });

  it('moves the lines of a store that kept a row per line into chunks, once, losing nothing', async () => {
    // The table a store of an earlier version wrote (and its retention record, as it kept it).
    const file = path.join(dir, 'logs.db');
    const legacy = new Database(file);
    legacy.exec(`
      CREATE TABLE log_lines (job_id TEXT NOT NULL, seq INTEGER NOT NULL, stream TEXT NOT NULL,
        ts INTEGER NOT NULL, line TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (job_id, seq)) WITHOUT ROWID;
      CREATE TABLE log_jobs (job_id TEXT PRIMARY KEY, last_written INTEGER NOT NULL) WITHOUT ROWID;
    `);
    const insert = legacy.prepare('INSERT INTO log_lines VALUES (?, ?, ?, ?, ?, ?)');
    const rows = (jobId: string, count: number): LogLine[] =>
      Array.from({ length: count }, (_, i) => ({
        seq: i + 1,
        stream: i % 3 === 0 ? 'stderr' : 'stdout',
        ts: 1_000 + i,
        line: `${jobId} ${i} é`,
        attempt: 1,
      }));
    const jobs = { a: rows('a', 12_000), b: rows('b', 3), c: rows('c', 1) };
    legacy.transaction(() => {
      for (const [jobId, lines] of Object.entries(jobs))
        for (const l of lines) insert.run(jobId, l.seq, l.stream, l.ts, l.line, l.attempt);
    })();
    legacy.prepare('INSERT INTO log_jobs VALUES (?, ?)').run('a', 42);
    legacy.close();

    const [store, other] = [new SqliteLogStore(file), new SqliteLogStore(file)];
    for (const [jobId, lines] of Object.entries(jobs)) {
      expect(await store.read(jobId)).toEqual(lines);
      expect(await other.lastSeq(jobId)).toBe(lines.length);
    }
    // Retention keeps the time each log was last written, for jobs with a record or without.
    expect(await store.jobsWrittenBefore(43, 10)).toEqual(['a']);
    expect(await store.jobsWrittenBefore(1_003, 10)).toEqual(['a', 'c', 'b']);
    await store.append('b', [{ seq: 4, stream: 'stdout', ts: 2_000, line: 'after', attempt: 1 }]);
    await store.close();
    await other.close();
    const db = new Database(file, { readonly: true });
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    db.close();
    expect(tables).toEqual(['log_chunks', 'log_exits', 'log_jobs']);
    const reopened = new SqliteLogStore(file);
    expect((await reopened.read('b')).map((l) => l.line)).toEqual(['b 0 é', 'b 1 é', 'b 2 é', 'after']);
    await reopened.close();
  });

  it('keeps a line that is not well-formed UTF-16 with U+FFFD in place of its lone surrogate', async () => {
    const store = SqliteLogStore.inDataDir(dir);
    await store.append('j', [
      { seq: 1, stream: 'stdout', ts: 1, line: 'a\uD800b', attempt: 1 },
      { seq: 2, stream: 'stdout', ts: 2, line: 'after', attempt: 1 },
    ]);
    expect((await store.read('j')).map((l) => l.line)).toEqual(['a\uFFFDb', 'after']);
    await store.close();
  });
});
