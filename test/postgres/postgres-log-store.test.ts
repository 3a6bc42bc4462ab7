import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { openLogStore } from '../../log-store/open-log-store.js';
import { APPEND_CHANNEL, LISTEN_APPLICATION_NAME, PostgresLogStore } from '../../log-store/postgres-log-store.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';
import { adminQuery, createDatabase } from '../support/postgres.js';
import { waitFor } from '../support/wait.js';
import { describeLogStoreContract } from '../support/log-store-contract.js';

// The same contract as the embedded store, on a real PostgreSQL server, a fresh database per test.
describeLogStoreContract('PostgresLogStore', async () => {
  const db = await createDatabase(inject('postgresUrl'));
  return { open: () => PostgresLogStore.open(db.url), destroy: () => db.drop() };
});

describe('PostgresLogStore on a real server', () => {
  let db: Awaited<ReturnType<typeof createDatabase>>;
  const stores: PostgresLogStore[] = [];
  const open = async () => {
    const store = await PostgresLogStore.open(db.url);
    stores.push(store);
    return store;
  };
  /** The server processes of this database's LISTEN connections. */
  const listeners = () =>
    adminQuery<{ pid: number }>(
      inject('postgresUrl'),
      'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 AND query = $3',
      [new URL(db.url).pathname.slice(1), LISTEN_APPLICATION_NAME, `LISTEN ${APPEND_CHANNEL}`],
    );

  beforeEach(async () => {
    db = await createDatabase(inject('postgresUrl'));
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    await db.drop();
  });

  it('creates its schema once when several processes start at once', async () => {
    const [a, b, c] = await Promise.all([open(), open(), open()]);
    await a!.append('j', [{ seq: 1, stream: 'stdout', ts: 1, line: 'x', attempt: 1 }]);
    expect(await b!.lastSeq('j')).toBe(1);
    expect(await c!.lastSeq('j')).toBe(1);
    const tables = await adminQuery<{ tablename: string }>(
      db.url,
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    );
    expect(tables.map((t) => t.tablename)).toEqual(['log_exits', 'log_jobs', 'log_lines']);
  });

  it('keeps a NUL as U+FFFD (PostgreSQL text cannot hold one) and stores the rest of the line', async () => {
    const store = await open();
    await store.append('j', [{ seq: 1, stream: 'stdout', ts: 1, line: 'a\0b\0', attempt: 1 }]);
    expect((await store.read('j'))[0]?.line).toBe('a\uFFFDb\uFFFD');
  });

  it('keeps a lone surrogate as U+FFFD, and the batch around such lines exactly', async () => {
    const store = await open();
    // Lines of one batch travel as one JSON array: the odd ones must not fail or shift the others.
    const texts = ['before', 'lone \ud800 high', 'x\0\udfff', 'é 🎉 "q" \\ \u0001', 'after'];
    await store.append(
      'k',
      texts.map((line, i) => ({ seq: i + 1, stream: 'stdout' as const, ts: i, line, attempt: 1 })),
    );
    expect((await store.read('k')).map((l) => l.line)).toEqual([
      'before',
      'lone \uFFFD high',
      'x\uFFFD\uFFFD',
      'é 🎉 "q" \\ \u0001',
      'after',
    ]);
  });

  it('wakes watchers of a job after another store commits its lines, through one LISTEN connection', async () => {
    const reader = await open();
    const writer = await open();
    const woken: Record<string, number> = { a: 0, b: 0 };
    const seen: number[] = [];
    const stopA = reader.watch('a', () => {
      woken.a! += 1;
      // Woken only after the commit: the lines are readable by then.
      void reader.lastSeq('a').then((seq) => seen.push(seq));
    });
    const stopB = reader.watch('b', () => (woken.b! += 1));
    const stopB2 = reader.watch('b', () => (woken.b! += 1));
    await waitFor('the LISTEN connection', async () => ((await listeners()).length === 1 ? true : undefined));
    // Once listening, the store wakes every watcher once (appends before were announced to no one).
    await waitFor('the first wake', () => (woken.a === 1 && woken.b === 2 && seen.length === 1 ? true : undefined));
    seen.length = 0;
    const base = { ...woken };

    await writer.append('a', [{ seq: 1, stream: 'stdout', ts: 1, line: 'x', attempt: 1 }]);
    await waitFor('a wake for a', () => (woken.a! > base.a! ? true : undefined), { timeoutMs: 5000, intervalMs: 5 });
    await waitFor('the woken read', () => (seen.length > 0 ? true : undefined), { timeoutMs: 5000, intervalMs: 5 });
    expect(seen.every((seq) => seq === 1)).toBe(true);
    expect(woken.b).toBe(base.b);

    await writer.append('b', [{ seq: 1, stream: 'stdout', ts: 1, line: 'y', attempt: 1 }]);
    await waitFor('both watchers of b', () => (woken.b! >= base.b! + 2 ? true : undefined), {
      timeoutMs: 5000,
      intervalMs: 5,
    });

    stopA();
    stopB();
    stopB2();
    const after = { ...woken };
    await writer.append('a', [{ seq: 2, stream: 'stdout', ts: 2, line: 'z', attempt: 1 }]);
    await writer.append('b', [{ seq: 2, stream: 'stdout', ts: 2, line: 'z', attempt: 1 }]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(woken).toEqual(after);
    // Three watchers, two jobs: still one connection listening.
    expect(await listeners()).toHaveLength(1);
  });

  it('listens again after losing its connection, and wakes its watchers then', async () => {
    const reader = await open();
    const writer = await open();
    let woken = 0;
    reader.watch('j', () => (woken += 1));
    const [first] = await waitFor('the LISTEN connection', async () => {
      const found = await listeners();
      return found.length === 1 ? found : undefined;
    });

    await adminQuery(inject('postgresUrl'), 'SELECT pg_terminate_backend($1)', [first!.pid]);
    const [second] = await waitFor('a new LISTEN connection', async () => {
      const found = await listeners();
      return found.length === 1 && found[0]!.pid !== first!.pid ? found : undefined;
    });
    expect(second!.pid).not.toBe(first!.pid);
    // Appends while nobody listened were announced to no one: the reconnect wakes every watcher.
    await waitFor('the wake after reconnecting', () => (woken > 0 ? true : undefined), {
      timeoutMs: 5000,
      intervalMs: 5,
    });

    const before = woken;
    await writer.append('j', [{ seq: 1, stream: 'stdout', ts: 1, line: 'x', attempt: 1 }]);
    await waitFor('a wake on the new connection', () => (woken > before ? true : undefined), {
      timeoutMs: 5000,
      intervalMs: 5,
    });
  });

  it('is what HODEI_LOG_STORE names: a PostgreSQL URL, or the SQLite file in the data dir by default', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'hodei-open-'));
    try {
      const postgres = await openLogStore({ HODEI_LOG_STORE: db.url, HODEI_DATA_DIR: dataDir });
      stores.push(postgres as PostgresLogStore);
      expect(postgres).toBeInstanceOf(PostgresLogStore);
      await postgres.append('j', [{ seq: 1, stream: 'stdout', ts: 1, line: 'x', attempt: 1 }]);
      expect(await adminQuery(db.url, 'SELECT job_id, seq FROM log_lines')).toEqual([{ job_id: 'j', seq: '1' }]);
      expect(existsSync(path.join(dataDir, 'logs.db'))).toBe(false);

      const sqlite = await openLogStore({ HODEI_LOG_STORE: 'sqlite', HODEI_DATA_DIR: dataDir });
      expect(sqlite).toBeInstanceOf(SqliteLogStore);
      expect(await sqlite.lastSeq('j')).toBe(0);
      await sqlite.close();
      expect(existsSync(path.join(dataDir, 'logs.db'))).toBe(true);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses to open on a server that is not there, with the connection error', async () => {
    const url = new URL(db.url);
    url.port = '1';
    await expect(PostgresLogStore.open(url.toString())).rejects.toThrow(/ECONNREFUSED/);
  });
});
