import type Docker from 'dockerode';
import type { Readable } from 'node:stream';
import type { JobUsage } from '../domain/artifacts.js';

interface StatsSample {
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
  memory_stats?: { max_usage?: number; usage?: number };
  blkio_stats?: { io_service_bytes_recursive?: { op: string; value: number }[] | null };
}

/**
 * A running container's resource usage, from the engine's stats stream (one sample a second,
 * read from the container's cgroup): CPU time and peak memory are cumulative in the cgroup, so
 * the last sample is at most a second behind the container's end. Jobs that declare artifacts
 * get exact figures instead, read by their wrapper at the script's end (script-hold.ts).
 * One HTTP stream per running job; no sample is kept but the latest.
 */
export class UsageSampler {
  private latest: JobUsage | undefined;
  private stream: Readable | undefined;
  private stopped = false;

  constructor(private readonly container: Docker.Container) {}

  start(): this {
    this.container.stats({ stream: true }).then(
      (stream) => {
        this.stream = stream as unknown as Readable;
        if (this.stopped) this.stream.destroy();
        let pending = '';
        this.stream.on('data', (chunk: Buffer) => {
          pending += chunk.toString('utf8');
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            this.take(line);
          }
        });
        this.stream.on('error', () => undefined);
      },
      () => undefined,
    );
    return this;
  }

  private take(line: string): void {
    let sample: StatsSample;
    try {
      sample = JSON.parse(line) as StatsSample;
    } catch {
      return;
    }
    const cpu = sample.cpu_stats?.cpu_usage?.total_usage;
    const memory = sample.memory_stats?.max_usage ?? sample.memory_stats?.usage;
    // A stopped container's last sample is all zeros: keep the one before.
    if (!cpu || !memory) return;
    const io = sample.blkio_stats?.io_service_bytes_recursive ?? [];
    const sum = (op: string) => io.filter((e) => e.op.toLowerCase() === op).reduce((n, e) => n + e.value, 0);
    this.latest = {
      cpuSeconds: cpu / 1e9,
      maxMemoryBytes: memory,
      blockReadBytes: sum('read'),
      blockWriteBytes: sum('write'),
    };
  }

  /** Stops sampling; the last figures seen. */
  stop(): JobUsage | undefined {
    this.stopped = true;
    this.stream?.destroy();
    return this.latest;
  }
}
