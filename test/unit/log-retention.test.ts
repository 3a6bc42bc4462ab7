import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LogRetention } from '../../log-store/retention.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';

let dir: string;
let store: SqliteLogStore;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'hodei-retention-'));
  store = SqliteLogStore.inDataDir(dir);
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const line = { seq: 1, stream: 'stdout' as const, ts: 1, line: 'x', attempt: 1 };

describe('LogRetention (the job-state answers are stand-ins; the integration tier asks a real Temporal)', () => {
  it('pages through many candidates, keeps running jobs, and deletes nothing when Temporal cannot answer', async () => {
    for (let i = 0; i < 250; i++) await store.append(`job-${i}`, [line]);
    const running = (id: string) => Number(id.slice(4)) % 2 === 0;
    const retention = new LogRetention(store, { retentionMs: 1000, intervalMs: 1000, isFinished: async (id) => !running(id) });
    expect(await retention.sweep(Date.now() + 2000)).toBe(125);
    expect(await store.lastSeq('job-1')).toBe(0);
    expect(await store.lastSeq('job-2')).toBe(1);

    const unreachable = new LogRetention(store, {
      retentionMs: 1000,
      intervalMs: 1000,
      isFinished: () => Promise.reject(new Error('temporal unreachable')),
    });
    await expect(unreachable.sweep(Date.now() + 2000)).rejects.toThrow('unreachable');
    expect((await store.jobsWrittenBefore(Date.now() + 2000, 1000)).length).toBe(125);
  });

  it('only looks at logs not written to for the whole period', async () => {
    await store.append('fresh', [line]);
    const retention = new LogRetention(store, { retentionMs: 60_000, intervalMs: 1000, isFinished: async () => true });
    expect(await retention.sweep(Date.now())).toBe(0);
    expect(await store.lastSeq('fresh')).toBe(1);
  });
});
