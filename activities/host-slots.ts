import type { ActivitySlotInfo, CustomSlotSupplier } from '@temporalio/worker';
import type Docker from 'dockerode';
import { LABEL_INSTANCE, LABEL_MANAGED } from '../domain/container-labels.js';
import { isIdlePoolName } from './warm-pool.js';

/** Docker states that hold a slot. */
export const LIVE_STATES = ['created', 'running', 'paused', 'restarting'];

/**
 * Caps the job containers alive on one Docker host: created or running (a container whose script
 * has exited holds no slot while it waits to be removed). The count comes from what the engine
 * reports (containers labelled with this installation's id), plus creations in flight in this
 * process; so a crashed worker leaves no phantom slots behind.
 */
export class HostSlots {
  private reserved = 0;
  private lock: Promise<void> = Promise.resolve();
  private waiters = new Set<() => void>();
  private queue: symbol[] = [];
  // Bumped on every possible change, so a waiter never sleeps through one it raced with.
  private generation = 0;
  private blindReservations = 0;

  constructor(
    private readonly docker: Docker,
    private readonly instanceId: string,
    readonly capacity: number,
  ) {}

  /** Live (created, running, paused, restarting) containers of this installation on the host, as Docker reports them. */
  async countContainers(): Promise<number> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: {
        label: [`${LABEL_MANAGED}=true`, `${LABEL_INSTANCE}=${this.instanceId}`],
        status: LIVE_STATES,
      },
    });
    // Warm pool hook: idle pool containers hold no slot (they are bounded by HODEI_WARM_POOL).
    return containers.filter((c) => !c.Names.some(isIdlePoolName)).length;
  }

  /**
   * Tries to reserve a slot for one container about to be created; returns a release function,
   * or undefined when the host is full. Checks are serialised so two callers never take the
   * last slot together.
   */
  private async tryAcquire(): Promise<(() => void) | undefined> {
    const previous = this.lock;
    let unlock!: () => void;
    this.lock = new Promise((resolve) => (unlock = resolve));
    await previous;
    try {
      let blind = false;
      try {
        const used = (await this.countContainers()) + this.reserved;
        if (used >= this.capacity) return undefined;
      } catch {
        // The engine does not answer. One job at a time may go ahead anyway: its provisioning
        // fails, says why in the job, and retries with backoff (maybe on a healthy host).
        if (this.blindReservations > 0) return undefined;
        blind = true;
      }
      this.reserved += 1;
      if (blind) this.blindReservations += 1;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        this.reserved -= 1;
        if (blind) this.blindReservations -= 1;
        this.notify();
      };
    } finally {
      unlock();
    }
  }

  /**
   * Waits for a slot, first come first served: only the longest-waiting caller tries, so a newly
   * arrived job never overtakes one that has been waiting. `signal` aborts the wait.
   */
  async acquire(signal: AbortSignal): Promise<() => void> {
    const ticket = Symbol('waiter');
    this.queue.push(ticket);
    try {
      for (;;) {
        const seen = this.generation;
        if (this.queue[0] === ticket) {
          const release = await this.tryAcquire();
          if (release) return release;
        }
        if (this.generation === seen) await this.waitForChange(1000, signal);
        if (signal.aborted) throw signal.reason;
      }
    } finally {
      this.queue.splice(this.queue.indexOf(ticket), 1);
      // The next in line may go now.
      this.notify();
    }
  }

  /** Resolves when a slot may have freed (a container was removed here), or after `ms`. */
  private waitForChange(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      signal.addEventListener('abort', done);
    });
  }

  /** Tells waiting provisioners that a container of this host went away. */
  notify(): void {
    this.generation += 1;
    for (const waiter of [...this.waiters]) waiter();
  }
}

/**
 * A Temporal slot supplier for the provisioning worker: it reserves a container slot on this host
 * *before* the worker polls for a provisioning task. So a host takes a queued job only when it
 * can create its container at once; a full host leaves queued jobs in Temporal for other hosts,
 * and a slot that frees is filled by the next job in the queue's order.
 */
export function containerSlotSupplier(slots: HostSlots): CustomSlotSupplier<ActivitySlotInfo> {
  return {
    type: 'custom',
    async reserveSlot(_ctx, abortSignal) {
      const release = await slots.acquire(abortSignal);
      return { release };
    },
    // No eager activities: a slot is never reserved without waiting for a container slot.
    tryReserveSlot: () => null,
    markSlotUsed: () => undefined,
    releaseSlot(ctx) {
      (ctx.permit as { release?: () => void }).release?.();
    },
  };
}
