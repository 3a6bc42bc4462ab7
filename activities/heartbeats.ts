import type { Context } from '@temporalio/activity';

/**
 * An activity's heartbeats on a timer, so that no slow step goes without one: each carries the
 * latest details (`carry`), at first the details the attempt started with (a retry's, re-sent
 * unchanged, lose nothing). The worker throttles what reaches the server.
 */
export class Heartbeats {
  private details: () => unknown;
  private timer: NodeJS.Timeout | undefined;
  private intervalMs: number | undefined;

  constructor(
    private readonly ctx: Context,
    initial: unknown,
  ) {
    this.details = () => initial;
  }

  /** Heartbeats every `intervalMs` from now on, the first one after `firstAfterMs`. */
  every(intervalMs: number, firstAfterMs = intervalMs): this {
    this.stop();
    this.intervalMs = intervalMs;
    this.timer = setTimeout(() => {
      this.beat();
      this.timer = setInterval(() => this.beat(), intervalMs);
    }, firstAfterMs);
    return this;
  }

  /**
   * From now on the heartbeats carry what `details` returns; one goes at once, and the next
   * periodic one a whole interval after it (not a tick that happens to fall just after: each
   * heartbeat that reaches the server is a write there).
   */
  carry(details: () => unknown): void {
    this.details = details;
    this.beat();
    if (this.intervalMs !== undefined) this.every(this.intervalMs);
  }

  beat(): void {
    this.ctx.heartbeat(this.details());
  }

  stop(): void {
    // clearTimeout clears an interval too.
    clearTimeout(this.timer);
    this.timer = undefined;
    this.intervalMs = undefined;
  }
}
