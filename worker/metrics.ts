import { createServer, type Server } from 'node:http';
import type Docker from 'dockerode';
import type {
  ActivityInboundCallsInterceptor,
  ActivityExecuteInput,
  ActivityInterceptorsFactory,
  Next,
} from '@temporalio/worker';
import type { Context } from '@temporalio/activity';
import { isIdlePoolName } from '../activities/warm-pool.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ArtifactsSummary, JobUsage } from '../domain/artifacts.js';
import type { ScriptOutcome } from '../activities/types.js';
import { LABEL_INSTANCE, LABEL_MANAGED } from '../domain/container-labels.js';
import type { Logger } from 'pino';
import { listenOrExit } from '../domain/listen.js';
import type { LogLine, LogStore } from '../log-store/log-store.js';

// Jobs wait seconds to hours; containers start in well under a second.
const WAIT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const RUN_BUCKETS = [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400];

/**
 * The worker's Prometheus metrics: what only the worker sees (its activities, its Docker host,
 * the log lines it stores). Served by `serveMetrics` on `HODEI_WORKER_METRICS_PORT`.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly queueWait = new Histogram({
    name: 'hodei_job_queue_wait_seconds',
    help: 'Job queued → its provisioning started on a host with a free slot (waiting for capacity)',
    buckets: WAIT_BUCKETS,
    registers: [this.registry],
  });
  readonly provisioning = new Histogram({
    name: 'hodei_job_provisioning_seconds',
    help: 'Provisioning started → container created with the script inside (image, limits)',
    buckets: WAIT_BUCKETS,
    registers: [this.registry],
  });
  readonly runTime = new Histogram({
    name: 'hodei_job_run_seconds',
    help: 'Script start → its container stopped, by how it ended',
    labelNames: ['outcome'],
    buckets: RUN_BUCKETS,
    registers: [this.registry],
  });
  readonly reaperRemoved = new Counter({
    name: 'hodei_reaper_removed_containers_total',
    help: 'Orphaned job containers (workflow closed, unknown, or on a later attempt) the reaper removed',
    registers: [this.registry],
  });
  readonly logBytes = new Counter({
    name: 'hodei_log_bytes_stored_total',
    help: 'Bytes of job output written to the log store by this worker',
    labelNames: ['stream'],
    registers: [this.registry],
  });

  readonly cpuSeconds = new Histogram({
    name: 'hodei_job_cpu_seconds',
    help: "CPU time a finished attempt's container used (its cgroup)",
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200],
    registers: [this.registry],
  });
  readonly maxMemoryBytes = new Histogram({
    name: 'hodei_job_max_memory_bytes',
    help: "Peak memory of a finished attempt's container (its cgroup's high-water mark)",
    buckets: [16, 64, 256, 1024, 4096, 16384].map((mib) => mib * 1024 * 1024),
    registers: [this.registry],
  });
  readonly artifactBytes = new Histogram({
    name: 'hodei_job_artifact_bytes',
    help: "Bytes of a job's artifacts collected into the artifact store",
    buckets: [1024, 1024 ** 2, 16 * 1024 ** 2, 256 * 1024 ** 2, 1024 ** 3, 8 * 1024 ** 3],
    registers: [this.registry],
  });
  readonly artifactCollection = new Histogram({
    name: 'hodei_job_artifact_collection_seconds',
    help: "Time to collect a job's artifacts (container → store)",
    buckets: RUN_BUCKETS,
    registers: [this.registry],
  });

  /** A finished attempt's usage, into the histograms. */
  readonly observeUsage = (usage: JobUsage): void => {
    this.cpuSeconds.observe(usage.cpuSeconds);
    this.maxMemoryBytes.observe(usage.maxMemoryBytes);
  };

  /** A collection, into the histograms. */
  readonly observeArtifacts = (summary: ArtifactsSummary, seconds: number): void => {
    this.artifactBytes.observe(summary.bytes);
    this.artifactCollection.observe(seconds);
  };

  constructor(options: { docker: Docker; host: string; instanceId: string }) {
    collectDefaultMetrics({ register: this.registry, prefix: 'hodei_worker_' });
    const { docker, host, instanceId } = options;
    new Gauge({
      name: 'hodei_job_containers',
      help: "Job containers (created or running) on this worker's Docker host, from Docker's own list",
      labelNames: ['host', 'state'],
      registers: [this.registry],
      async collect() {
        this.reset();
        const containers = await docker.listContainers({
          all: true,
          filters: { label: [`${LABEL_MANAGED}=true`, `${LABEL_INSTANCE}=${instanceId}`] },
        });
        const byState = new Map<string, number>();
        // Idle warm pool containers are no jobs': hodei_warm_pool_idle counts them.
        for (const c of containers.filter((c) => !c.Names.some(isIdlePoolName)))
          byState.set(c.State, (byState.get(c.State) ?? 0) + 1);
        for (const [state, count] of byState) this.set({ host, state }, count);
        if (byState.size === 0) this.set({ host, state: 'running' }, 0);
      },
    });
  }

  /** The warm pool's idle containers (`hodei_warm_pool_idle`), as the pool counts them. */
  observeWarmPool(idle: () => number): void {
    new Gauge({
      name: 'hodei_warm_pool_idle',
      help: 'Idle warm pool containers of this worker (started, waiting for a job: HODEI_WARM_POOL)',
      registers: [this.registry],
      collect() {
        this.set(idle());
      },
    });
  }

  /** Counts the bytes of every line stored through the returned store. */
  meterLogStore(store: LogStore): LogStore {
    const logBytes = this.logBytes;
    return new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'append') {
          return async (jobId: string, lines: readonly LogLine[]) => {
            await target.append(jobId, lines);
            // Summed per stream first: one counter update per stream and batch, not per line.
            const bytes = new Map<string, number>();
            for (const line of lines)
              bytes.set(line.stream, (bytes.get(line.stream) ?? 0) + Buffer.byteLength(line.line) + 1);
            for (const [stream, n] of bytes) logBytes.inc({ stream }, n);
          };
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** Observes the job activities: queue wait and provisioning from provisionContainer, run time from runScript. */
  readonly interceptor: ActivityInterceptorsFactory = (ctx: Context) => ({
    inbound: new MetricsInterceptor(ctx, this),
  });
}

class MetricsInterceptor implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly ctx: Context,
    private readonly metrics: WorkerMetrics,
  ) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const type = this.ctx.info.activityType;
    if (type === 'provisionContainer') return this.provision(input, next);
    const result = await next(input);
    if (type === 'runScript') {
      const outcome = result as Partial<ScriptOutcome> | undefined;
      const started = Date.parse(outcome?.startedAt ?? '');
      const finished = Date.parse(outcome?.finishedAt ?? '');
      if (Number.isFinite(started) && Number.isFinite(finished)) {
        const label = outcome?.oomKilled ? 'oom_killed' : outcome?.exitCode === 0 ? 'exit_zero' : 'exit_nonzero';
        this.metrics.runTime.observe({ outcome: label }, Math.max(0, finished - started) / 1000);
      }
    }
    return result;
  }

  /**
   * The provisioning worker polls only once it holds a container slot (`containerSlotSupplier`),
   * so the provision activity starts when the job's wait for capacity ends: scheduled → started is
   * the queue wait, started → returned the provisioning. Observed once per provisioned container.
   */
  private async provision(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>) {
    const started = Date.now();
    const result = await next(input);
    const done = Date.now();
    // Scheduled time of the first attempt (the workflow schedules provisioning as it starts, or as
    // it queues the job again): a retried provisioning's failed attempts count as waiting.
    this.metrics.queueWait.observe(Math.max(0, started - this.ctx.info.scheduledTimestampMs) / 1000);
    this.metrics.provisioning.observe((done - started) / 1000);
    return result;
  }
}

/**
 * Serves `GET /metrics` (Prometheus text) on its own port (0: one the system picks); resolves once
 * it listens, with the port bound. A port in use ends the worker with a message naming
 * HODEI_WORKER_METRICS_PORT: whoever set it expects the metrics there (a second worker on one
 * machine needs a port of its own, or 0).
 */
export async function serveMetrics(
  registry: Registry,
  { port, host, logger }: { port: number; host: string; logger: Logger },
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
    );
  });
  return { server, port: await listenOrExit(server, { port, host, setting: 'HODEI_WORKER_METRICS_PORT', logger }) };
}
