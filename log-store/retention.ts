import type { LogStore } from './log-store.js';

export interface LogRetentionOptions {
  /** How long a finished job's logs are kept after their last write, ms (`HODEI_RETENTION_DAYS`). */
  retentionMs: number;
  /** How often to sweep, ms. */
  intervalMs: number;
  /**
   * Whether the job has ended (or is unknown to Temporal, which forgets jobs after the same
   * retention). Throws when that cannot be known: then nothing is deleted.
   */
  isFinished: (jobId: string) => Promise<boolean>;
  onError?: (err: unknown) => void;
}

/** Jobs looked at per sweep step. */
const BATCH = 100;

/**
 * Deletes the logs of jobs that ended longer ago than the retention period — the period that
 * sets the Temporal namespace's retention, so a job's record and its logs go together. A job's
 * logs are candidates once nothing was written to them for the whole period; a job still running
 * (quiet for that long) keeps them.
 */
export class LogRetention {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<number> | undefined;

  constructor(
    /** The log store, or any store that keeps per-job data by the same rule (the artifact store). */
    private readonly store: Pick<LogStore, 'jobsWrittenBefore' | 'deleteJob'>,
    private readonly options: LogRetentionOptions,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => {
      this.sweep().catch((err: unknown) => this.options.onError?.(err));
    }, this.options.intervalMs);
    // A sweep never keeps the process alive.
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One sweep; resolves with how many jobs' logs were deleted. */
  sweep(now = Date.now()): Promise<number> {
    this.sweeping ??= this.sweepOnce(now).finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private async sweepOnce(now: number): Promise<number> {
    const cutoff = now - this.options.retentionMs;
    const kept = new Set<string>();
    let deleted = 0;
    for (;;) {
      const candidates = (await this.store.jobsWrittenBefore(cutoff, BATCH + kept.size)).filter((id) => !kept.has(id));
      if (candidates.length === 0) return deleted;
      for (const id of candidates) {
        if (await this.options.isFinished(id)) {
          await this.store.deleteJob(id);
          deleted += 1;
        } else {
          kept.add(id);
        }
      }
    }
  }
}
