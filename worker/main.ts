import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { Client, Connection } from '@temporalio/client';
import {
  bundleWorkflowCode,
  DefaultLogger,
  NativeConnection,
  Runtime,
  Worker,
  type LogLevel,
} from '@temporalio/worker';
import { loadSeccompProfile } from '../activities/container-spec.js';
import { createActivities } from '../activities/index.js';
import { WarmPool } from '../activities/warm-pool.js';
import { createConcurrencyActivities } from '../activities/concurrency.js';
import { containerSlotSupplier, HostSlots } from '../activities/host-slots.js';
import { loadConfig } from '../domain/config.js';
import { controlTaskQueue, hostTaskQueue } from '../domain/task-queues.js';
import { openArtifactStore } from '../artifact-store/open-artifact-store.js';
import { openLogStore } from '../log-store/open-log-store.js';
import { createLogger } from '../domain/logger.js';
import { writePortsFile } from '../domain/listen.js';
import { codecKeys, encryptingDataConverter } from '../domain/payload-codec.js';
import { dockerHostId } from './host.js';
import { startReaper } from './reaper.js';
import { serveMetrics, WorkerMetrics } from './metrics.js';

const config = loadConfig();
const logger = createLogger('worker', config.HODEI_LOG_LEVEL, config.HODEI_LOG_FORMAT);

Runtime.install({
  logger: new DefaultLogger(toSdkLevel(config.HODEI_LOG_LEVEL), (entry) => {
    const level = entry.level.toLowerCase() as 'trace' | 'debug' | 'info' | 'warn' | 'error';
    logger[level]({ ...entry.meta }, entry.message);
  }),
});
// Bundled here rather than by Worker.create, whose bundler logs webpack's whole report at info:
// that report is kept for debug.
const workflowBundle = await bundleWorkflowCode({
  workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)),
  logger: new DefaultLogger('TRACE', (entry) => {
    const level =
      entry.level === 'INFO' ? 'debug' : (entry.level.toLowerCase() as 'trace' | 'debug' | 'warn' | 'error');
    logger[level]({ ...entry.meta }, entry.message);
  }),
});

const docker = new Docker();
const hostId = await dockerHostId(docker);
const taskQueue = hostTaskQueue(config.HODEI_TASK_QUEUE, hostId);

try {
  await docker.getImage(config.HODEI_WORKER_IMAGE).inspect();
} catch {
  logger.fatal({ image: config.HODEI_WORKER_IMAGE }, 'worker image missing: run `npm run setup` to build it');
  process.exit(1);
}

const logStore = await openLogStore(config, { onError: (err) => logger.warn({ err }, 'log store connection') });
const metrics = new WorkerMetrics({ docker, host: hostId, instanceId: config.HODEI_INSTANCE_ID });
const slots = new HostSlots(docker, config.HODEI_INSTANCE_ID, config.HODEI_WORKER_CAPACITY);
const containerOptions = {
  instanceId: config.HODEI_INSTANCE_ID,
  seccompProfile: loadSeccompProfile(),
  logMaxBytes: config.HODEI_LOG_MAX_BYTES,
};
// Warm containers of the default image and resource shape (docs/capacity.md).
const warmPool = new WarmPool({
  docker,
  size: config.HODEI_WARM_POOL,
  image: config.HODEI_WORKER_IMAGE,
  resources: {
    cpus: config.HODEI_JOB_CPUS,
    memoryMb: config.HODEI_JOB_MEMORY_MB,
    pidsLimit: config.HODEI_JOB_PIDS_LIMIT,
    scratchMb: config.HODEI_JOB_SCRATCH_MB,
  },
  containerOptions,
  log: (message, meta) => logger.warn(meta, message),
});
metrics.observeWarmPool(() => warmPool.idleCount);
const activities = createActivities({
  host: { docker, id: hostId, taskQueue, slots },
  logStore: metrics.meterLogStore(logStore),
  instanceId: config.HODEI_INSTANCE_ID,
  provisionDeadlineMs: config.HODEI_PROVISION_DEADLINE_SECONDS * 1000,
  logMaxBytes: config.HODEI_LOG_MAX_BYTES,
  heartbeatIntervalMs: config.HODEI_HEARTBEAT_INTERVAL_MS,
  // The API's limits, checked again on every job (a workflow may be started on Temporal directly).
  limits: config,
  seccompProfile: containerOptions.seccompProfile,
  warmPool,
  artifactStore: openArtifactStore(config),
  onUsage: metrics.observeUsage,
  onArtifacts: metrics.observeArtifacts,
});

const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
const clientConnection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
// Payloads (job input with its secrets, activity input and results, memo, heartbeats) are
// encrypted in Temporal; the workflow code never sees the codec.
const dataConverter = encryptingDataConverter(codecKeys(config));
const client = new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE, dataConverter });
const common = { connection, namespace: config.TEMPORAL_NAMESPACE, dataConverter };

// Shared queue: every job's workflow, and provisioning, which any host with a free slot may take.
const jobsWorker = await Worker.create({
  ...common,
  taskQueue: config.HODEI_TASK_QUEUE,
  workflowBundle,
  activities: { provisionContainer: activities.provisionContainer },
  interceptors: { activity: [metrics.interceptor] },
  // Provisioning is polled only while this host has a free container slot: queued jobs stay in
  // Temporal (in order, free for any host) until a host can take them.
  tuner: {
    workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: 40 },
    activityTaskSlotSupplier: containerSlotSupplier(slots),
    localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
    nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
  },
  // A queued job's provision activity learns of a cancel from its heartbeats.
  maxHeartbeatThrottleInterval: '500 milliseconds',
});

// This host's queue: running and removing the containers it holds. Capacity is enforced on
// containers at provisioning, so these slots never starve a running job or its cleanup.
const hostWorker = await Worker.create({
  ...common,
  taskQueue,
  activities: {
    runScript: activities.runScript,
    removeContainer: activities.removeContainer,
    collectArtifacts: activities.collectArtifacts,
    stopHeldScript: activities.stopHeldScript,
    stopRun: activities.stopRun,
  },
  interceptors: { activity: [metrics.interceptor] },
  maxConcurrentActivityTaskExecutions: config.HODEI_WORKER_CAPACITY * 2 + 8,
  // Every heartbeat the run sends reaches the server (the run's own interval sets the pace): its
  // checkpoint, and for a job from before `stopRun` the cancel, come with it.
  maxHeartbeatThrottleInterval: '100 milliseconds',
  defaultHeartbeatThrottleInterval: '100 milliseconds',
});

// The control queue: light activities that only talk to Temporal (concurrency permits), on fixed
// slots, so a job waiting for its key never takes or waits for a container slot.
const controlWorker = await Worker.create({
  ...common,
  taskQueue: controlTaskQueue(config.HODEI_TASK_QUEUE),
  activities: createConcurrencyActivities({ client }),
  maxConcurrentActivityTaskExecutions: 20,
});
const workers = [jobsWorker, hostWorker, controlWorker];

logger.info(
  { taskQueue: config.HODEI_TASK_QUEUE, hostQueue: taskQueue, host: hostId, capacity: config.HODEI_WORKER_CAPACITY },
  'worker started',
);
const stopReaper = startReaper({
  docker,
  client,
  instanceId: config.HODEI_INSTANCE_ID,
  graceMs: config.HODEI_REAPER_GRACE_SECONDS * 1000,
  intervalMs: config.HODEI_REAPER_INTERVAL_SECONDS * 1000,
  logger,
  poolOwner: warmPool.owner,
  onRemoved: (count) => metrics.reaperRemoved.inc(count),
});
warmPool.start();

const metricsEndpoint =
  config.HODEI_WORKER_METRICS_PORT === undefined
    ? undefined
    : await serveMetrics(metrics.registry, {
        port: config.HODEI_WORKER_METRICS_PORT,
        host: config.HODEI_WORKER_METRICS_HOST,
        logger,
      });
if (metricsEndpoint)
  logger.info({ address: metricsEndpoint.server.address(), port: metricsEndpoint.port }, 'worker metrics listening');
await writePortsFile(config.HODEI_PORTS_FILE, metricsEndpoint ? { metrics: metricsEndpoint.port } : {});
const metricsServer = metricsEndpoint?.server;

try {
  // If one worker stops (a signal, or a fatal error), stop the others too.
  await Promise.all(
    workers.map((w) =>
      w.run().finally(() => {
        for (const other of workers) if (other.getState() === 'RUNNING') other.shutdown();
      }),
    ),
  );
} finally {
  await warmPool.stop();
  await stopReaper();
  metricsServer?.close();
  await clientConnection.close();
  await connection.close();
  await logStore.close();
}

function toSdkLevel(level: string): LogLevel {
  switch (level) {
    case 'trace':
      return 'TRACE';
    case 'debug':
      return 'DEBUG';
    case 'info':
      return 'INFO';
    case 'warn':
      return 'WARN';
    default:
      return 'ERROR';
  }
}
