import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { LABEL_INSTANCE } from '../../domain/container-labels.js';
import { ROOT } from './stack.js';
import { waitFor } from './wait.js';

/** One JSON log line of the supervisor or of a part it runs (they share its stdout). */
export interface LogRecord {
  name?: string;
  msg?: string;
  part?: 'temporal' | 'worker' | 'api';
  childPid?: number;
  [key: string]: unknown;
}

export type PartName = 'temporal' | 'worker' | 'api';

/** `npm start`'s supervisor (scripts/supervise.ts), run by a test on a data dir and ports of its own. */
export interface Supervisor {
  process: ChildProcess;
  dataDir: string;
  apiUrl: string;
  temporalAddress: string;
  /** Every JSON line on its stdout so far. */
  records: LogRecord[];
  /** Its stderr so far (the banner). */
  stderr(): string;
  /** The PID each part runs as now, from the supervisor's own `<part> started` lines. */
  pidOf(part: PartName): number;
  /** The API token it made in the data dir. */
  token(): Promise<string>;
  /** Resolves with the exit code and signal once the supervisor exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Kills what is left (the supervisor and the parts it started, by PID), its containers, and its data dir. */
  destroy(): Promise<void>;
}

/** A port free on loopback now; a start that loses it to another process is retried. */
function pickPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

const PORT_IN_USE = /address already in use|EADDRINUSE/;

/**
 * Starts the supervisor and waits for its `hodei jobs is running` line. A start that fails
 * because a port it was given got taken in between (other suites start servers at once) is
 * retried with fresh ports.
 */
export async function startSupervisor(
  options: { env?: Record<string, string>; attempts?: number } = {},
): Promise<Supervisor> {
  const attempts = options.attempts ?? 3;
  for (let attempt = 1; ; attempt += 1) {
    const supervisor = await launch(options.env ?? {});
    const outcome = await Promise.race([
      waitFor(
        'the supervisor to say it is running',
        () => (supervisor.records.some((r) => r.msg === 'hodei jobs is running') ? true : undefined),
        {
          timeoutMs: 240_000,
          intervalMs: 200,
        },
      ).then(() => 'running' as const),
      supervisor.exited.then(() => 'exited' as const),
    ]).catch(async (err: unknown) => {
      await supervisor.destroy();
      throw err;
    });
    if (outcome === 'running') return supervisor;
    const output = `${supervisor.records.map((r) => JSON.stringify(r)).join('\n')}\n${supervisor.stderr()}\n${await readFile(path.join(supervisor.dataDir, 'temporal.log'), 'utf8').catch(() => '')}`;
    await supervisor.destroy();
    if (attempt < attempts && PORT_IN_USE.test(output)) continue;
    throw new Error(`the supervisor exited during start-up:\n${output.split('\n').slice(-40).join('\n')}`);
  }
}

async function launch(extraEnv: Record<string, string>): Promise<Supervisor> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'hodei-start-'));
  const [temporalPort, uiPort, apiPort, codecPort] = [
    await pickPort(),
    await pickPort(),
    await pickPort(),
    await pickPort(),
  ];
  // Its settings only: none of the environment's Hodei or Temporal settings leak in.
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(HODEI_|TEMPORAL_)/.test(k)),
  );
  Object.assign(env, {
    TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
    HODEI_TEMPORAL_UI_PORT: String(uiPort),
    HODEI_API_PORT: String(apiPort),
    HODEI_CODEC_PORT: String(codecPort),
    HODEI_DATA_DIR: dataDir,
    HODEI_LOG_FORMAT: 'json',
    // A restarted worker may take over a minute to poll again on a loaded machine (see stack.ts).
    HODEI_HOST_LOSS_SECONDS: '600',
    ...extraEnv,
  });
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/supervise.ts'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const records: LogRecord[] = [];
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      try {
        records.push(JSON.parse(line) as LogRecord);
      } catch {
        // Not a log line (a part printing something else): not needed here.
      }
    }
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));

  const pidsStarted = () =>
    records.filter((r) => r.name === 'hodei-start' && r.msg?.endsWith(' started') && r.childPid !== undefined);
  return {
    process: child,
    dataDir,
    apiUrl: `http://127.0.0.1:${apiPort}`,
    temporalAddress: `127.0.0.1:${temporalPort}`,
    records,
    stderr: () => stderr,
    pidOf(part) {
      const started = pidsStarted().filter((r) => r.part === part);
      const last = started[started.length - 1];
      if (!last) throw new Error(`no ${part} started yet`);
      return last.childPid!;
    },
    token: async () => (await readFile(path.join(dataDir, 'api-token'), 'utf8')).trim(),
    exited,
    async destroy() {
      // Only what this supervisor started, by PID. Asked first: it stops its parts in order.
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const stopped = await Promise.race([
          exited.then(() => true),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 30_000)),
        ]);
        if (!stopped) {
          child.kill('SIGKILL');
          await exited;
          // It could not stop its parts: kill the ones still running (started, not since reported dead).
          const dead = new Set(
            records.filter((r) => r.name === 'hodei-start' && r.msg?.includes('exited')).map((r) => r.childPid),
          );
          for (const record of pidsStarted()) {
            if (dead.has(record.childPid)) continue;
            try {
              process.kill(record.childPid!, 'SIGKILL');
            } catch {
              // Already gone.
            }
          }
        }
      }
      const instanceId = (await readFile(path.join(dataDir, 'instance-id'), 'utf8').catch(() => '')).trim();
      if (instanceId) {
        const docker = new Docker();
        const left = await docker.listContainers({
          all: true,
          filters: { label: [`${LABEL_INSTANCE}=${instanceId}`] },
        });
        await Promise.all(
          left.map((c) =>
            docker
              .getContainer(c.Id)
              .remove({ force: true, v: true })
              .catch(() => undefined),
          ),
        );
      }
      if (!process.env.HODEI_KEEP_TEST_DATA) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
