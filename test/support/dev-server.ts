import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { candidatePorts, ROOT, TEMPORAL_DEV } from './stack.js';

export interface DevServer {
  /** `host:port` of its frontend. */
  address: string;
  /** Ends the server (SIGKILL after 10 s) and removes its log. */
  stop(): Promise<void>;
}

/** Runs a command to its end; resolves with its exit code (null when killed). */
function exitOf(child: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
}

/**
 * A Temporal dev server of the caller's own, in memory, on loopback, without its Web UI: started
 * by the one launcher (scripts/temporal-dev.sh) and set up by scripts/temporal-init.sh, as for
 * `npm start` and the test stack. On ports drawn at random, tried again with others when taken.
 */
export async function startDevServer(): Promise<DevServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hodei-dev-server-'));
  const logPath = path.join(dir, 'temporal.log');
  for (let attempt = 1; ; attempt++) {
    const [port] = await candidatePorts(1);
    const address = `127.0.0.1:${port}`;
    const log = await open(logPath, 'w');
    const server = spawn('bash', [TEMPORAL_DEV, '--ip', '127.0.0.1', '--port', String(port), '--headless'], {
      cwd: ROOT,
      stdio: ['ignore', log.fd, log.fd],
    });
    await log.close();
    const serverExit = exitOf(server);
    const init = spawn('bash', [path.join(ROOT, 'scripts/temporal-init.sh')], {
      cwd: ROOT,
      env: { ...process.env, TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: 'default' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const ready = await Promise.race([exitOf(init).then((code) => code === 0), serverExit.then(() => false)]);
    const stop = async () => {
      if (server.exitCode === null && server.signalCode === null) {
        server.kill('SIGTERM');
        const killer = setTimeout(() => server.kill('SIGKILL'), 10_000);
        await serverExit;
        clearTimeout(killer);
      }
    };
    if (ready) {
      return {
        address,
        stop: async () => {
          await stop();
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    if (init.exitCode === null && init.signalCode === null) init.kill('SIGKILL');
    await stop();
    const text = await readFile(logPath, 'utf8').catch(() => '');
    if (!/address already in use/i.test(text) || attempt >= 5) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(
        `the Temporal dev server on ${address} did not start\n--- ${logPath} ---\n${text.trimEnd().split('\n').slice(-40).join('\n')}`,
      );
    }
  }
}
