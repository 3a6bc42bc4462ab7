/**
 * Artifact throughput benchmark (issue 14). On its own stack: a job leaving 500 MB in 5 files of
 * 100 MB, from submit until `GET /jobs/:id/artifacts` lists all five; against the baseline of
 * the same script in a bare container (writing to its writable layer, as `docker cp` cannot read
 * a tmpfs) run, then `docker cp` of its /work out of the stopped container, in the same run,
 * alternating. BENCH_ARTIFACT_RUNS (default 3) rounds. Also the worker's RSS growth while it
 * collects (its peak in a round over its settled level just before it). Prints medians and the
 * ratio; writes JSON to bench/results/. Never fails on a timing.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { startStack, type RunningStack } from '../test/support/stack.js';
import {
  ApiClient,
  BENCH_LABEL,
  docker,
  environment,
  goalLine,
  now,
  pollUntil,
  positiveInt,
  printTable,
  progress,
  removeBenchContainers,
  runBench,
  summarize,
  WORKER_IMAGE,
  writeResults,
} from './support.js';

const RUNS = positiveInt('BENCH_ARTIFACT_RUNS', 3);
const RESULTS = path.resolve(import.meta.dirname, 'results');
const FILES = 5;
const FILE_MB = 100;
const SCRIPT = `mkdir -p out && for i in $(seq 1 ${FILES}); do head -c ${FILE_MB}M /dev/urandom > out/f$i.bin; done`;

let stack: RunningStack | undefined;
const runId = randomUUID();

/** The worker's total collection time so far (`hodei_job_artifact_collection_seconds_sum`), ms. */
async function collectionMs(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const sum = /^hodei_job_artifact_collection_seconds_sum(?:\{[^}]*\})? (\S+)$/m.exec(text);
  return sum ? Number(sum[1]) * 1000 : 0;
}

async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** The worker's settled RSS before a round: the lowest of a few samples over a second. */
async function settledRss(pid: number): Promise<number> {
  let low = Infinity;
  for (let i = 0; i < 10; i += 1) {
    low = Math.min(low, await rss(pid));
    await new Promise((r) => setTimeout(r, 100));
  }
  return low;
}

/** The platform: submit → all five artifacts listed; the worker's RSS peak over its level just before. */
async function platformRun(
  api: ApiClient,
  token: string,
  workerPid: number,
): Promise<{ ms: number; before: number; peakRss: number }> {
  const before = await settledRss(workerPid);
  let peakRss = before;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakRss = Math.max(peakRss, await rss(workerPid));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const started = now();
  const job = await api.submit({
    script: SCRIPT,
    artifacts: { paths: ['out/*.bin'] },
    resources: { memoryMb: 1536, scratchMb: 1024 },
  });
  const listed = await pollUntil(
    `artifacts of job ${job.id}`,
    async () => {
      const res = await fetch(`${api.baseUrl}/jobs/${job.id}/artifacts`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const body = (await res.json()) as { artifacts?: unknown[] };
      return (body.artifacts?.length ?? 0) === FILES;
    },
    20,
    600_000,
  );
  sampling = false;
  await sampler;
  return { ms: listed - started, before, peakRss };
}

/** What `docker cp` does: the engine's archive endpoint, streamed into `tar -x` on the host. */
async function dockerCp(container: string, target: string): Promise<void> {
  const archive = (await docker.getContainer(container).getArchive({ path: '/tmp/work' })) as unknown as Readable;
  const tar = spawn('tar', ['-x', '-C', target], { stdio: ['pipe', 'ignore', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => tar.once('exit', resolve));
  await pipeline(archive, tar.stdin!);
  const code = await exited;
  if (code !== 0) throw new Error(`tar -x exited ${code}`);
}

/** The baseline: the same script in a bare container, then `docker cp` of its files out of it, stopped. */
async function baselineRun(): Promise<{ ms: number; cpMs: number }> {
  // On the disk (bench/results/ is git-ignored), as the platform's data dir is.
  await mkdir(RESULTS, { recursive: true });
  const target = await mkdtemp(path.join(RESULTS, '.docker-cp-'));
  const started = now();
  const container = await docker.createContainer({
    Image: WORKER_IMAGE,
    // The image's user may write /tmp (here on the container's writable layer, which docker cp reads).
    Cmd: ['bash', '-c', `mkdir -p /tmp/work && cd /tmp/work && ${SCRIPT}`],
    Labels: { [BENCH_LABEL]: runId },
    HostConfig: { NetworkMode: 'none', Init: true },
  });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    if (StatusCode !== 0) throw new Error(`the baseline script exited ${StatusCode}`);
    const cpStarted = now();
    await dockerCp(container.id, target);
    const ended = now();
    return { ms: ended - started, cpMs: ended - cpStarted };
  } finally {
    await container.remove({ force: true, v: true });
    await rm(target, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  stack = await startStack({ capacity: 2 });
  const api = new ApiClient(stack.info.apiUrl, stack.info.apiToken);
  const workerPid = stack.info.workerPid;
  const idleRss = await rss(workerPid);
  const platform: number[] = [];
  const baseline: number[] = [];
  const cp: number[] = [];
  const collection: number[] = [];
  let peakRss = idleRss;
  /** The largest rise of the worker's RSS during a round over its settled level just before it. */
  let growth = 0;
  for (let i = 0; i < RUNS; i += 1) {
    progress(`round ${i + 1}/${RUNS}`);
    // Alternating, so load drifts hit both alike.
    const b = await baselineRun();
    baseline.push(b.ms);
    cp.push(b.cpMs);
    const collectedBefore = await collectionMs(stack.info.workerMetricsUrl);
    const p = await platformRun(api, stack.info.apiToken, workerPid);
    // Recorded once the collect activity returns, a moment after the manifest is listed.
    await pollUntil(
      'the collection metric',
      async () => (await collectionMs(stack!.info.workerMetricsUrl)) > collectedBefore,
      20,
      60_000,
    );
    collection.push((await collectionMs(stack.info.workerMetricsUrl)) - collectedBefore);
    platform.push(p.ms);
    peakRss = Math.max(peakRss, p.peakRss);
    growth = Math.max(growth, p.peakRss - p.before);
  }
  progress('', true);
  const rows = {
    'platform: submit → 5 artifacts listed': summarize(platform),
    'baseline: bare run + docker cp': summarize(baseline),
    'platform: collection alone (metric)': summarize(collection),
    'baseline: docker cp alone': summarize(cp),
  };
  printTable(`Artifacts: ${FILES} × ${FILE_MB} MB (${RUNS} rounds)`, rows);
  const ratio = rows['platform: submit → 5 artifacts listed'].median / rows['baseline: bare run + docker cp'].median;
  const growthMiB = growth / 2 ** 20;
  console.log(`\n  ratio platform / baseline (medians): ${ratio.toFixed(2)}×`);
  console.log(
    `  worker RSS: at start ${(idleRss / 2 ** 20).toFixed(0)} MiB, peak ${(peakRss / 2 ** 20).toFixed(0)} MiB, ` +
      `largest rise in a round over its settled level before it ${growthMiB.toFixed(1)} MiB`,
  );
  console.log(goalLine(`platform ≤ 1.5× baseline: ${ratio.toFixed(2)}×`, ratio <= 1.5));
  console.log(goalLine(`worker RSS growth < 100 MiB: ${growthMiB.toFixed(0)} MiB`, growthMiB < 100));
  const file = writeResults('artifacts', {
    environment: await environment(),
    runs: RUNS,
    rows,
    samples: { platform, baseline, cp, collection },
    ratio,
    rss: { idle: idleRss, peak: peakRss, growthMiB },
  });
  console.log(`\nresults: ${file}`);
}

runBench(main, async () => {
  await removeBenchContainers(runId);
  await stack?.stop();
});
