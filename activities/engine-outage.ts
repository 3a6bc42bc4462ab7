import { ApplicationFailure, log } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { Readable } from 'node:stream';
import { LABEL_INSTANCE } from '../domain/container-labels.js';
import { FAILURE_CONTAINER_LOST, FAILURE_ENGINE_UNREACHABLE } from '../domain/job-failures.js';
import { isNotFound } from './container-ops.js';

/** How long a reported exit waits for the engine's `die` event of the container. */
const DIE_EVENT_WAIT_MS = 2000;
/** Containers remembered at most (a `destroy` event forgets one; one missed leaves an entry). */
const MAX_REMEMBERED = 10_000;

interface EngineEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
}

/**
 * What the Docker engine said about an installation's containers, from its event stream: which
 * ones it sent a signal (`kill` event) and which ones ended (`die`).
 *
 * Why: when the engine stops (a restart, an upgrade), it stops its containers first (SIGTERM, then
 * SIGKILL), and the run activity sees the container exit 143 or 137 — often over a connection the
 * dying engine still serves, or, after the engine came back, from the container's record. That
 * exit is no exit of the script's. The engine logs a `kill` event for every signal it sends
 * (engine shutdown, `docker stop`/`kill`/`rm -f` by anyone) and none for a signal from inside the
 * container (the script's own `kill`, the kernel's OOM kill), so a reported exit of a container
 * the engine sent a signal is not the script's: the container was lost. The platform's own stops
 * (cancel, timeout) send one too, but never report an exit. The stream is one connection per
 * worker, opened before the containers it watches end; a worker that stalls still reads what
 * the engine sent meanwhile, and it reconnects (from where it left off) when the engine comes
 * back. Events the engine sent while no worker listened (a worker that died with its engine)
 * are missed: such an exit is still taken as the script's.
 */
export class ContainerEvents {
  private readonly killed = new Map<string, string>();
  private readonly died = new Set<string>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private since = Math.floor(Date.now() / 1000);
  private connected = false;

  private constructor(
    private readonly docker: Docker,
    private readonly instanceId: string,
  ) {}

  private static readonly byEngine = new WeakMap<Docker, ContainerEvents>();

  /** The one watch of `docker`'s events about the installation's containers, started on first use. */
  static of(docker: Docker, instanceId: string): ContainerEvents {
    let watch = ContainerEvents.byEngine.get(docker);
    if (!watch) {
      watch = new ContainerEvents(docker, instanceId);
      ContainerEvents.byEngine.set(docker, watch);
      void watch.follow();
    }
    return watch;
  }

  /** Reads the event stream; once it ends (the engine went away), again a second later. */
  private async follow(): Promise<void> {
    for (;;) {
      try {
        const stream = (await this.docker.getEvents({
          since: this.since,
          filters: {
            type: ['container'],
            event: ['kill', 'die', 'destroy'],
            label: [`${LABEL_INSTANCE}=${this.instanceId}`],
          },
        })) as unknown as Readable & { socket?: { unref(): void } };
        // Never what keeps a process alive.
        stream.socket?.unref();
        this.connected = true;
        await this.read(stream);
      } catch {
        // The engine is unreachable: try again below.
      }
      this.connected = false;
      await new Promise((resolve) => setTimeout(resolve, 1000).unref());
    }
  }

  private read(stream: Readable): Promise<void> {
    return new Promise((resolve) => {
      let rest = '';
      stream.on('data', (chunk: Buffer) => {
        const lines = (rest + chunk.toString('utf8')).split('\n');
        rest = lines.pop()!;
        for (const line of lines) {
          try {
            if (line.trim()) this.onEvent(JSON.parse(line) as EngineEvent);
          } catch {
            // Not an event: skip it.
          }
        }
      });
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', resolve);
    });
  }

  private onEvent(event: EngineEvent): void {
    const id = event.Actor?.ID;
    if (!id) return;
    // A reconnect reads from this second on again: its events are idempotent here.
    if (event.time) this.since = Math.max(this.since, event.time);
    if (event.Action === 'kill') this.killed.set(id, event.Actor?.Attributes?.signal ?? '?');
    else if (event.Action === 'die') {
      this.died.add(id);
      for (const wake of this.waiters.get(id) ?? []) wake();
    } else if (event.Action === 'destroy') {
      this.killed.delete(id);
      this.died.delete(id);
    }
    for (const seen of [this.killed, this.died]) {
      if (seen.size > MAX_REMEMBERED) seen.delete(seen.keys().next().value!);
    }
  }

  /** Resolves once the container's `die` event was read, or after `ms` (and whatever I/O was pending then), or at once without a stream. */
  private async dieEvent(id: string, ms: number): Promise<void> {
    // Without a stream no event comes: what was read before the engine went away is all there is.
    if (this.died.has(id) || !this.connected) return;
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiters.get(id)?.delete(wake);
        if (this.waiters.get(id)?.size === 0) this.waiters.delete(id);
        resolve();
      };
      // After a stalled process resumes, timers run before pending reads: read those first.
      const timer = setTimeout(() => setImmediate(wake), ms);
      let waiting = this.waiters.get(id);
      if (!waiting) this.waiters.set(id, (waiting = new Set()));
      waiting.add(wake);
    });
  }

  /**
   * Called once the run saw the container exit on its own: when the engine sent it a signal, it
   * is lost (removed here; `ContainerLost`, which the workflow retries per `infraRetries` as for
   * a lost host) rather than exited with the script's code. A removal the engine cannot take yet
   * fails retryably: the next attempt finds the container stopped, and lands here again.
   */
  async checkExit(container: Docker.Container, exitCode: number): Promise<void> {
    await this.dieEvent(container.id, DIE_EVENT_WAIT_MS);
    const signal = this.killed.get(container.id);
    if (signal === undefined) return;
    log.warn('container was stopped by its Docker engine, not by the script: lost', {
      containerId: container.id,
      signal,
      exitCode,
    });
    try {
      await container.remove({ force: true, v: true });
    } catch (err) {
      if (!isNotFound(err)) {
        throw ApplicationFailure.create({
          type: FAILURE_ENGINE_UNREACHABLE,
          message: `container ${container.id} was stopped by its Docker engine, which does not take its removal yet: ${(err as Error).message}`,
          cause: err as Error,
        });
      }
    }
    throw ApplicationFailure.create({
      type: FAILURE_CONTAINER_LOST,
      message: `container ${container.id} was stopped by its Docker engine (signal ${signal}; a restart of the engine?): exit code ${exitCode} is not the script's`,
      nonRetryable: true,
    });
  }
}
