/**
 * Orphan benchmark (issue 11, item 5). On its own stack with the DEFAULT reaper settings
 * (HODEI_REAPER_INTERVAL_SECONDS, HODEI_REAPER_GRACE_SECONDS as `domain/config.ts` sets them):
 * a running job's workflow is terminated (no cleanup runs) → its container is removed by the
 * reaper (Docker's `destroy` event). BENCH_RUNS (default 20) jobs, in batches of BENCH_BATCH
 * (default 5) running at once; each is terminated at a random moment within one reaper interval,
 * so the sweep's phase is sampled evenly. Baseline in the same run: `docker rm -f` of a bare
 * container running the same script. Also times a sweep itself (one container list plus one
 * describe per job container) with a batch running. Prints medians and p95; writes JSON to
 * bench/results/. Never fails on a timing.
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { pino } from 'pino';
import { loadConfig } from '../domain/config.js';
import { LABEL_INSTANCE, LABEL_JOB_ID } from '../domain/container-labels.js';
import { encryptingDataConverter } from '../domain/payload-codec.js';
import { startStack, type RunningStack } from '../test/support/stack.js';
import { sweepOrphans } from '../worker/reaper.js';
import {
  ApiClient,
  BENCH_LABEL,
  ContainerEvents,
  docker,
  environment,
  epochOf,
  goalLine,
  jobContainers,
  now,
  pollUntil,
  positiveInt,
  printTable,
  progress,
  removeBenchContainers,
  RUNS,
  runBench,
  sleep,
  startBareContainer,
  summarize,
  waitForNoContainer,
  writeResults,
  type Summary,
} from './support.js';

const BATCH = positiveInt('BENCH_BATCH', 5);
const GOAL_MS = 15_000;
const SWEEPS = 10;
const SCRIPT = 'echo ready; while true; do echo tick; sleep 0.1; done';

const runId = randomUUID();
let stack: RunningStack | undefined;
let connection: Connection | undefined;
let jobEvents: ContainerEvents | undefined;
let bareEvents: ContainerEvents | undefined;

async function main() {
  // The defaults, exactly as a start with no settings gets them.
  const defaults = loadConfig({ HODEI_INSTANCE_ID: 'bench-defaults' });
  const intervalMs = defaults.HODEI_REAPER_INTERVAL_SECONDS * 1000;
  const graceMs = defaults.HODEI_REAPER_GRACE_SECONDS * 1000;
  console.log(
    `orphans bench: ${RUNS} terminated jobs in batches of ${BATCH}, default reaper interval ${intervalMs / 1000} s and grace ${graceMs / 1000} s, starting a stack…`,
  );
  stack = await startStack({
    capacity: BATCH + 2,
    env: {
      HODEI_REAPER_INTERVAL_SECONDS: String(intervalMs / 1000),
      HODEI_REAPER_GRACE_SECONDS: String(graceMs / 1000),
    },
  });
  const { apiUrl, apiToken, instanceId, temporalAddress, namespace, codecKey } = stack.info;
  const api = new ApiClient(apiUrl, apiToken);
  connection = await Connection.connect({ address: temporalAddress });
  const client = new Client({
    connection,
    namespace,
    dataConverter: encryptingDataConverter([Buffer.from(codecKey, 'base64')]),
  });
  jobEvents = await ContainerEvents.watch(`${LABEL_INSTANCE}=${instanceId}`, LABEL_JOB_ID);
  bareEvents = await ContainerEvents.watch(`${BENCH_LABEL}=${runId}`, `${BENCH_LABEL}.id`);

  const orphanMs: number[] = [];
  const bareMs: number[] = [];
  const sweepMs: number[] = [];
  while (orphanMs.length < RUNS) {
    const size = Math.min(BATCH, RUNS - orphanMs.length);
    const jobs = await Promise.all(
      Array.from({ length: size }, () => api.submit({ script: SCRIPT, cancelGraceSeconds: 0 })),
    );
    for (const job of jobs) await api.waitForLogs(job.id, (text) => text.includes('ready'), { intervalMs: 50 });

    // A sweep with a batch running: what the reaper costs each interval (it removes nothing here).
    if (sweepMs.length < SWEEPS) {
      for (let i = 0; i < SWEEPS; i += 1) {
        const t0 = now();
        const result = await sweepOrphans({
          docker,
          client,
          instanceId: instanceId,
          graceMs,
          logger: pino({ level: 'silent' }),
        });
        if (!result.complete || result.removed.length > 0)
          throw new Error('a sweep of running jobs removed something or did not finish');
        sweepMs.push(now() - t0);
      }
    }

    // Each job terminated at a random moment within one interval: the reaper's phase is unknown.
    await Promise.all(
      jobs.map(async (job) => {
        await sleep(Math.random() * intervalMs);
        const t0 = now();
        await client.workflow.getHandle(job.id).terminate('bench: orphan');
        await pollUntil(
          `job ${job.id}'s container to be gone`,
          async () => (await jobContainers(instanceId, job.id)).length === 0,
          250,
          5 * 60_000,
        );
        await jobEvents!.settle(job.id, 'destroy');
        const destroyed = jobEvents!.firstAfter(job.id, 'destroy', epochOf(t0));
        if (destroyed === undefined) throw new Error(`no destroy event for job ${job.id}`);
        orphanMs.push(destroyed);
        progress(`${orphanMs.length}/${RUNS} orphans removed`);
      }),
    );

    // The baseline, as many times as there were jobs: `docker rm -f` of a like container, running.
    for (let i = 0; i < size; i += 1) {
      const bare = await startBareContainer(runId, SCRIPT);
      const t0 = now();
      await bare.container.remove({ force: true });
      await waitForNoContainer(bare.labels);
      await bareEvents.settle(bare.key, 'destroy');
      const destroyed = bareEvents.firstAfter(bare.key, 'destroy', epochOf(t0));
      if (destroyed === undefined) throw new Error('no destroy event for a bare container');
      bareMs.push(destroyed);
    }
  }
  progress(`${orphanMs.length}/${RUNS} orphans removed`, true);

  const rows: Record<string, Summary> = {
    'terminate → container removed (destroy)': summarize(orphanMs),
    'bare docker rm -f → removed (destroy)': summarize(bareMs),
    [`one sweep, ${BATCH} job containers running`]: summarize(sweepMs),
  };
  printTable(
    `Orphans: terminated workflow → container removed, default reaper (interval ${intervalMs / 1000} s)`,
    rows,
  );
  const orphan = rows['terminate → container removed (destroy)']!;
  const bare = rows['bare docker rm -f → removed (destroy)']!;
  console.log(`  ratio of medians to bare docker rm -f: ${(orphan.median / bare.median).toFixed(1)}×`);
  console.log(
    `  a sweep every ${intervalMs / 1000} s takes ${rows[`one sweep, ${BATCH} job containers running`]!.median.toFixed(0)} ms (median) for ${BATCH} containers`,
  );
  console.log('\nGoals (informational; a bench never fails on a timing)');
  console.log(
    goalLine(
      `terminate → container gone: p95 ${orphan.p95.toFixed(0)} ms under ${GOAL_MS / 1000} s`,
      orphan.p95 < GOAL_MS,
    ),
  );

  const file = writeResults('orphans', {
    bench: 'orphans',
    finishedAt: new Date().toISOString(),
    runs: RUNS,
    batch: BATCH,
    reaper: { intervalMs, graceMs },
    environment: await environment(),
    summary: rows,
    samples: { orphanMs, bareMs, sweepMs },
  });
  console.log(`\nresults: ${file}`);
}

runBench(main, async () => {
  jobEvents?.close();
  bareEvents?.close();
  await removeBenchContainers(runId);
  await connection?.close();
  const instanceId = stack?.info.instanceId;
  await stack?.stop();
  if (instanceId) {
    for (const info of await docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_INSTANCE}=${instanceId}`] },
    })) {
      await docker
        .getContainer(info.Id)
        .remove({ force: true, v: true })
        .catch(() => undefined);
    }
  }
});
