import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ROOT } from './stack.js';
import { waitFor } from './wait.js';

/** One more worker process (another host's), with the stack's settings and its own engine. */
export class WorkerProcess {
  private child?: ChildProcess;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly logPath: string,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Starts it and resolves once it says it has started (its workers created, about to poll): on a
   * loaded machine that takes many seconds (it bundles the workflows), and a test that submits
   * before then would see every job go to the other host.
   */
  async start(): Promise<void> {
    const log = openSync(this.logPath, 'a');
    const from = fstatSync(log).size;
    const child = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts'], {
      cwd: ROOT,
      env: this.env,
      stdio: ['ignore', log, log],
    });
    this.child = child;
    closeSync(log);
    await waitFor(
      'the extra worker to start',
      async () => {
        const text = (await readFile(this.logPath)).subarray(from).toString();
        if (text.includes('worker started')) return true;
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`worker exited; see ${this.logPath}:\n${text.slice(-4000)}`);
        return undefined;
      },
      { timeoutMs: 180_000, intervalMs: 100 },
    );
  }

  /** Ends the worker; SIGKILL plays a crash. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }
}
