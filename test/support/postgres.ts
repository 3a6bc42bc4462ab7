import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

/** A PostgreSQL server of the test run's own. */
export interface PostgresServer {
  /** URL of its `postgres` database, as the superuser (trust auth, loopback only). */
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** The newest server binaries of Debian's postgresql package (installed by scripts/postgres.sh). */
function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin/postgres'))).sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error('no PostgreSQL server under /usr/lib/postgresql: run `bash scripts/postgres.sh` (npm test does)');
  return path.join(root, versions[0]!, 'bin');
}

/**
 * Starts a fresh PostgreSQL server: initdb into a new data dir, then `postgres` listening on a
 * free port of 127.0.0.1 only (no Unix socket), trust auth. As root it runs as the `postgres`
 * user, which PostgreSQL requires. The data dir is a temporary one rather than one under .tools/
 * because that user must reach it whatever the permissions of the clone's parent folders.
 * `stop` ends the server this started, by its PID, and removes its data.
 */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir();
  const dir = mkdtempSync(path.join(tmpdir(), 'hodei-postgres-'));
  const data = path.join(dir, 'data');
  mkdirSync(data, { mode: 0o700 });
  const asUser: { uid?: number; gid?: number } = {};
  if (process.getuid?.() === 0) {
    asUser.uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    asUser.gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, asUser.uid, asUser.gid);
    chownSync(data, asUser.uid, asUser.gid);
  }
  execFileSync(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'], {
    ...asUser,
    cwd: dir,
    stdio: 'pipe',
  });
  const port = await freePort();
  const logFile = path.join(dir, 'postgres.log');
  const log = openSync(logFile, 'a');
  // A throwaway server: durability settings off for speed.
  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    max_connections: '300',
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
  };
  const server = spawn(
    path.join(bin, 'postgres'),
    ['-D', data, '-p', String(port), ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])],
    { ...asUser, cwd: dir, stdio: ['ignore', log, log] },
  );
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  try {
    await waitFor(
      'PostgreSQL to accept connections',
      async () => {
        if (server.exitCode !== null) throw new Error(`postgres exited: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
        const client = new pg.Client({ connectionString: url });
        try {
          await client.connect();
          return true;
        } finally {
          await client.end().catch(() => undefined);
        }
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  } catch (err) {
    server.kill('SIGKILL');
    throw err;
  }
  return {
    url,
    pid: server.pid!,
    async stop() {
      if (server.exitCode === null && server.signalCode === null) {
        // SIGINT: PostgreSQL's fast shutdown (clients disconnected, no waiting on them).
        server.kill('SIGINT');
        const killer = setTimeout(() => server.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A database of its own on the server at `serverUrl`, so tests never see each other's rows. */
export async function createDatabase(serverUrl: string, prefix = 'hodei_test'): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  await adminQuery(serverUrl, `CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** Runs one statement on its own connection. */
export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}
