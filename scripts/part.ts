/**
 * One supervised process of a launcher (`npm start`'s scripts/supervise.ts, `npm run cluster`'s
 * scripts/cluster.ts): started again when it dies, after a pause that doubles while it keeps dying
 * (1 s up to 30 s; back to 1 s once it ran a minute). Before the launcher's start-up is done a
 * part that dies is a failure of the start (it would die again), told to `onStartupExit`.
 */
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** A part that ran this long before dying is restarted after the first pause again. */
const STABLE_MS = 60_000;

/** What a part asks of its launcher. */
export interface PartHost {
  logger: Logger;
  /** The launcher is stopping: a part that exits now stays down. */
  stopping(): boolean;
  /** Start-up is done: from now on a part that dies is restarted. */
  running(): boolean;
  /** A part died during start-up. */
  onStartupExit(part: Part, message: string): void;
  /** A part was (re)started. */
  onStarted?(part: Part): void;
}

export class Part {
  child?: ChildProcess;
  private startedAt = 0;
  private backoffMs = BACKOFF_FIRST_MS;
  private restartTimer?: NodeJS.Timeout;
  private exited?: Promise<void>;

  constructor(
    readonly name: string,
    private readonly launch: () => ChildProcess,
    private readonly host: PartHost,
  ) {}

  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  start(): void {
    const child = this.launch();
    this.child = child;
    this.startedAt = Date.now();
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.once('error', (err) => this.host.logger.error({ part: this.name, err }, `${this.name} could not be started`));
    child.once('exit', (code, signal) => this.onExit(child, code, signal));
    this.host.logger.info({ part: this.name, childPid: child.pid }, `${this.name} started`);
    this.host.onStarted?.(this);
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child || this.host.stopping()) return;
    if (!this.host.running()) {
      this.host.onStartupExit(this, `${this.name} exited during start-up (${signal ?? `exit code ${code}`})`);
      return;
    }
    if (Date.now() - this.startedAt >= STABLE_MS) this.backoffMs = BACKOFF_FIRST_MS;
    const delayMs = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    this.host.logger.warn(
      { part: this.name, childPid: child.pid, code, signal, restartInMs: delayMs },
      `${this.name} exited unexpectedly: restarting it`,
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.host.stopping()) this.start();
    }, delayMs);
  }

  /** SIGTERM (or `signal`), SIGKILL after `deadlineMs`; resolves once it exited. */
  async stop(deadlineMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const killer = setTimeout(() => {
      this.host.logger.warn(
        { part: this.name, childPid: child.pid },
        `${this.name} did not stop within ${deadlineMs / 1000} s: killing it`,
      );
      child.kill('SIGKILL');
    }, deadlineMs);
    await this.exited;
    clearTimeout(killer);
  }

  kill(): void {
    clearTimeout(this.restartTimer);
    if (this.pid !== undefined) this.child!.kill('SIGKILL');
  }
}
