import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CHECKPOINT_AFTER_BYTES, WalCheckpointer } from '../../log-store/wal-checkpointer.js';

// A writer of its own (no auto-checkpoint: only the thread moves pages into the file) and the
// thread looking every 20 ms.
describe('WalCheckpointer', () => {
  let dir: string;
  let file: string;
  let db: Database.Database;
  let checkpointer: WalCheckpointer | undefined;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'hodei-wal-'));
    file = path.join(dir, 'logs.db');
    db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE t (v TEXT NOT NULL)');
  });
  afterEach(async () => {
    await checkpointer?.stop();
    checkpointer = undefined;
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const write = (text: string) => {
    db.prepare('INSERT INTO t VALUES (?)').run(text);
    checkpointer!.wrote(text.length);
  };

  it('leaves a trickle of small writes to its delay, and checkpoints a flood at its next look', async () => {
    checkpointer = new WalCheckpointer(file, { intervalMs: 20, trickleMs: 60_000 });
    // Each checkpoint that catches up makes the next commit start the WAL over and sync its header.
    for (let i = 0; i < 20; i++) {
      write('a line');
      await sleep(25);
    }
    expect(checkpointer.checkpoints).toBe(0);
    write('x'.repeat(CHECKPOINT_AFTER_BYTES));
    const deadline = Date.now() + 10_000;
    while (checkpointer.checkpoints === 0 && Date.now() < deadline) await sleep(10);
    expect(checkpointer.checkpoints).toBe(1);
    // The pages reached the database file itself.
    expect(statSync(file).size).toBeGreaterThan(CHECKPOINT_AFTER_BYTES);
  });

  it('checkpoints a trickle once per delay at most', async () => {
    checkpointer = new WalCheckpointer(file, { intervalMs: 20, trickleMs: 300 });
    const started = Date.now();
    while (Date.now() - started < 1_500) {
      write('a line');
      await sleep(25);
    }
    // Looked at about 75 times; a checkpoint needs 300 ms since the one before.
    expect(checkpointer.checkpoints).toBeGreaterThanOrEqual(1);
    expect(checkpointer.checkpoints).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 300));
    expect((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBeGreaterThan(20);
  });
});
