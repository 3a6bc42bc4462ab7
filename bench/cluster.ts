/**
 * Cluster benchmark (issue 17), all in one run on this machine:
 *   (1) BENCH_THROUGHPUT_JOBS (default 200) `echo hello` jobs submitted at once, wall time from
 *       the first submit until every one is SUCCEEDED, on
 *         - the cluster (scripts/cluster/cluster.ts: two hosts × capacity 4, the Temporal server
 *           on PostgreSQL, submits and polls spread over both API replicas),
 *         - the single-host stack at capacity 8 (Temporal dev server, test/support/stack.ts),
 *         - bare `docker run --rm --network none --init` ×8 in parallel (the baseline);
 *       ratios cluster / single host and each / docker run.
 *   (2) BENCH_BURST (default 1000) jobs submitted to the cluster in a burst (50 POSTs in
 *       flight), while a sampler GETs a random submitted job back to back, alternating replicas:
 *       its latency p50/p95/p99.
 * Prints figures, writes JSON to bench/results/. Never fails on a timing.
 */
import { randomUUID } from 'node:crypto';
import { createLogger } from '../domain/logger.js';
import { isTerminal } from '../domain/job-state.js';
import { startCluster, type RunningCluster } from '../scripts/cluster/cluster.js';
import { startStack, type RunningStack } from '../test/support/stack.js';
import {
  ApiClient,
  BENCH_LABEL,
  environment,
  goalLine,
  now,
  percentile,
  positiveInt,
  progress,
  removeBenchContainers,
  runBench,
  sampleLatency,
  sleep,
  timeProcess,
  WORKER_IMAGE,
  writeResults,
  pool,
} from './support.js';

const SCRIPT = 'echo hello';
const JOBS = positiveInt('BENCH_THROUGHPUT_JOBS', 200);
const BURST = positiveInt('BENCH_BURST', 1000);
const PARALLEL = 8;
const SUBMIT_IN_FLIGHT = 50;
const runId = randomUUID();
let cluster: RunningCluster | undefined;
let stack: RunningStack | undefined;

/** Waits until every job is terminal, oldest pending first, one GET in flight per API. */
async function waitAllTerminal(apis: ApiClient[], ids: string[], label: string): Promise<Map<string, string>> {
  const pending = [...ids];
  const states = new Map<string, string>();
  let i = 0;
  while (pending.length > 0) {
    const job = await apis[i++ % apis.length]!.job(pending[0]!);
    if (isTerminal(job.state)) {
      states.set(job.id, job.state);
      pending.shift();
      progress(`${label}: ${states.size}/${ids.length} done`);
      continue;
    }
    await sleep(50);
  }
  progress(`${label}: ${states.size}/${ids.length} done`, true);
  return states;
}

async function platform(apis: ApiClient[], label: string, count = JOBS) {
  const t0 = now();
  const jobs = await pool(Array.from({ length: count }), SUBMIT_IN_FLIGHT, (_, i) =>
    apis[i % apis.length]!.submit({ script: SCRIPT, name: `bench-${label}` }),
  );
  const states = await waitAllTerminal(
    apis,
    jobs.map((j) => j.id),
    label,
  );
  const wallMs = now() - t0;
  const succeeded = [...states.values()].filter((s) => s === 'SUCCEEDED').length;
  return { wallMs, succeeded };
}

async function dockerRuns(count = JOBS) {
  const t0 = now();
  await pool(Array.from({ length: count }), PARALLEL, async () => {
    const run = await timeProcess('docker', [
      'run',
      '--rm',
      '--network',
      'none',
      '--init',
      '--label',
      `${BENCH_LABEL}=${runId}`,
      WORKER_IMAGE,
      'bash',
      '-c',
      SCRIPT,
    ]);
    if (run.stdout.trim() !== 'hello') throw new Error(`docker run printed ${JSON.stringify(run.stdout)}`);
  });
  return { wallMs: now() - t0 };
}

async function burst(apis: ApiClient[]) {
  const ids: string[] = [];
  // GETs alternate between the replicas.
  const sampler = sampleLatency(ids, (id, k) => apis[k % apis.length]!.job(id));
  const t0 = now();
  await pool(Array.from({ length: BURST }), SUBMIT_IN_FLIGHT, async (_, i) => {
    ids.push((await apis[i % apis.length]!.submit({ script: SCRIPT, name: 'bench-burst' })).id);
  });
  const states = await waitAllTerminal(apis, [...ids], 'burst');
  const { samplesMs: getMs, errors } = await sampler.stop();
  return {
    wallMs: now() - t0,
    succeeded: [...states.values()].filter((s) => s === 'SUCCEEDED').length,
    get: {
      n: getMs.length,
      p50: percentile(getMs, 50),
      p95: percentile(getMs, 95),
      p99: percentile(getMs, 99),
      errors,
    },
  };
}

async function main() {
  console.log(`cluster bench: ${JOBS} jobs on the cluster (2 × 4), the single host (8), docker run ×${PARALLEL}`);
  const logger = createLogger('cluster', 'warn', 'json');
  cluster = await startCluster({
    instanceId: `bench-cluster-${runId.slice(0, 8)}`,
    apiPort: 0,
    env: { HODEI_WORKER_CAPACITY: '4', HODEI_CODEC_PORT: 'off', HODEI_LOG_FORMAT: 'json', HODEI_LOG_LEVEL: 'warn' },
    output: 'files',
    ephemeral: true,
    logger,
  });
  stack = await startStack({ capacity: PARALLEL });
  const clusterApis = cluster.info.apiUrls.map((url) => new ApiClient(url, cluster!.info.apiToken));
  const singleApi = [new ApiClient(stack.info.apiUrl, stack.info.apiToken)];

  console.log('warm-up…');
  await dockerRuns(PARALLEL);
  await platform(clusterApis, 'warm-up cluster', PARALLEL * 2);
  await platform(singleApi, 'warm-up single', PARALLEL);

  // Interleaved, so load that drifts through the run weighs on every series alike.
  const base1 = await dockerRuns();
  console.log(`  docker run ×${PARALLEL}:  ${base1.wallMs.toFixed(0)} ms`);
  const single = await platform(singleApi, 'single host');
  console.log(`  single host (8):  ${single.wallMs.toFixed(0)} ms, ${single.succeeded}/${JOBS} SUCCEEDED`);
  const clustered = await platform(clusterApis, 'cluster');
  console.log(`  cluster (2 × 4):  ${clustered.wallMs.toFixed(0)} ms, ${clustered.succeeded}/${JOBS} SUCCEEDED`);
  const base2 = await dockerRuns();
  console.log(`  docker run ×${PARALLEL}:  ${base2.wallMs.toFixed(0)} ms`);
  const baseMs = (base1.wallMs + base2.wallMs) / 2;

  console.log(`\nburst of ${BURST} jobs on the cluster, GET /jobs/:id sampled through both replicas`);
  const b = await burst(clusterApis);

  const clusterVsSingle = clustered.wallMs / single.wallMs;
  console.log(`\nratio cluster / single host        ${clusterVsSingle.toFixed(2)}×`);
  console.log(`ratio cluster / docker run         ${(clustered.wallMs / baseMs).toFixed(2)}×`);
  console.log(`ratio single host / docker run     ${(single.wallMs / baseMs).toFixed(2)}×`);
  console.log(
    `burst: ${b.succeeded}/${BURST} SUCCEEDED in ${b.wallMs.toFixed(0)} ms; GET p50 ${b.get.p50.toFixed(1)} ms, p95 ${b.get.p95.toFixed(1)} ms, p99 ${b.get.p99.toFixed(1)} ms (${b.get.n} samples, ${b.get.errors} errors)`,
  );
  console.log('\nGoals (informational; a bench never fails on a timing)');
  console.log(
    goalLine(`cluster within 1.3× of the single host: ${clusterVsSingle.toFixed(2)}×`, clusterVsSingle <= 1.3),
  );
  console.log(goalLine(`burst GET /jobs/:id p99 under 100 ms: ${b.get.p99.toFixed(1)} ms`, b.get.p99 < 100));
  const file = writeResults('cluster', {
    runId,
    at: new Date().toISOString(),
    environment: await environment(),
    settings: { jobs: JOBS, burst: BURST, script: SCRIPT },
    dockerRun: [base1, base2],
    single,
    cluster: clustered,
    ratios: {
      clusterVsSingle,
      clusterVsDockerRun: clustered.wallMs / baseMs,
      singleVsDockerRun: single.wallMs / baseMs,
    },
    burst: b,
  });
  console.log(`\nsamples: ${file}`);
}

runBench(main, async () => {
  await removeBenchContainers(runId);
  await stack?.stop();
  await cluster?.stop();
});
