import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { candidatePorts } from './stack.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

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
    ? readdirSync(root)
        .filter((v) => existsSync(path.join(root, v, 'bin/postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0)
    throw new Error('no PostgreSQL server under /usr/lib/postgresql: run `bash scripts/postgres.sh` (npm test does)');
  return path.join(root, versions[0]!, 'bin');
}

// A throwaway server: durability settings off for speed.
const SETTINGS = {
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  max_connections: '300',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
};

/**
 * Starts a fresh PostgreSQL server: initdb into a new data dir, then `postgres` listening on
 * 127.0.0.1 only (no Unix socket), trust auth. PostgreSQL cannot be asked for port 0, so it gets
 * a candidate port and, if that port turns out taken ("could not bind"), is started again on
 * another. As root it runs as the `postgres` user, which PostgreSQL requires. The data dir is a
 * temporary one rather than one under .tools/ because that user must reach it whatever the
 * permissions of the clone's parent folders. `stop` ends the server this started, by its PID,
 * and removes its data; a server that fails to start is stopped and removed too, and the error
 * carries the end of its log.
 */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir();
  const dir = await mkdtemp(path.join(tmpdir(), 'hodei-postgres-'));
  const logFile = path.join(dir, 'postgres.log');
  let server: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const stopServer = async () => {
    const child = server;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    // SIGINT: PostgreSQL's fast shutdown (clients disconnected, no waiting on them).
    child.kill('SIGINT');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  };
  const logTail = async () =>
    (await readFile(logFile, 'utf8').catch(() => '')).trimEnd().split('\n').slice(-40).join('\n');
  try {
    const data = path.join(dir, 'data');
    await mkdir(data, { mode: 0o700 });
    const asUser: { uid?: number; gid?: number } = {};
    if (process.getuid?.() === 0) {
      asUser.uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
      asUser.gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
      await chown(dir, asUser.uid, asUser.gid);
      await chown(data, asUser.uid, asUser.gid);
    }
    await run(
      path.join(bin, 'initdb'),
      ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'],
      {
        ...asUser,
        cwd: dir,
      },
    );
    for (let attempt = 1; ; attempt++) {
      const [port] = await candidatePorts(1);
      const log = await open(logFile, 'a');
      const logStart = (await log.stat()).size;
      try {
        const child = spawn(
          path.join(bin, 'postgres'),
          ['-D', data, '-p', String(port), ...Object.entries(SETTINGS).flatMap(([k, v]) => ['-c', `${k}=${v}`])],
          { ...asUser, cwd: dir, stdio: ['ignore', log.fd, log.fd] },
        );
        server = child;
        exited = new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.once('error', () => resolve());
        });
      } finally {
        await log.close();
      }
      const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
      const child = server;
      let gone = false;
      void exited.then(() => (gone = true));
      const accepted = await waitFor(
        'PostgreSQL to accept connections',
        async () => {
          if (gone) return false;
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
      if (accepted)
        return {
          url,
          pid: child.pid!,
          stop: async () => {
            await stopServer();
            await rm(dir, { recursive: true, force: true });
          },
        };
      const output = (await readFile(logFile)).subarray(logStart).toString('utf8');
      if (!/could not bind|Address already in use/i.test(output) || attempt >= 5) {
        throw new Error(`postgres exited while starting\n--- last 40 lines of ${logFile} ---\n${await logTail()}\n---`);
      }
    }
  } catch (err) {
    await stopServer();
    const tail = await logTail();
    await rm(dir, { recursive: true, force: true });
    if (err instanceof Error && !err.message.includes('--- last 40 lines') && tail) {
      err.message += `\n--- last 40 lines of postgres.log ---\n${tail}\n---`;
    }
    throw err;
  }
}

/** A database of its own on the server at `serverUrl`, so tests never see each other's rows. */
export async function createDatabase(
  serverUrl: string,
  prefix = 'hodei_test',
): Promise<{ url: string; drop(): Promise<void> }> {
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
