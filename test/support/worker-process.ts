import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { ROOT } from './stack.js';

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

  start(): void {
    const log = openSync(this.logPath, 'a');
    this.child = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts'], {
      cwd: ROOT,
      env: this.env,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
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
