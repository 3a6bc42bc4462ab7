/**
 * Foundation benchmark (issue 2). On its own stack, N times (BENCH_RUNS, default 20), interleaved
 * in a rotating order so load drifts hit every series alike:
 *   (a) submit → first log line visible through GET /jobs/:id/logs (polled every 5 ms)
 *   (b) submit → SUCCEEDED through GET /jobs/:id (polled every 5 ms)
 *   (a) and (b) twice: with the warm pool (HODEI_WARM_POOL, docs/capacity.md; the run waits, untimed,
 *       for an idle container first) and without it (the same job asking 1 MiB less scratch, which no
 *       pool container fits: today's cold path, on the same stack)
 *   (c) baseline: bare `docker run --rm --network none <image> bash -c 'echo hello'`, wall time
 *       and time to its first stdout byte
 *   (d) cancel request → container gone (docker ps -a by label, polled every 5 ms) for a job
 *       printing `tick` forever, against a bare container running the same loop stopped and
 *       removed with Docker alone.
 * Prints medians, p95 and ratios; writes JSON to bench/results/. Never fails on a timing.
 */
import { randomUUID } from 'node:crypto';
import { LABEL_INSTANCE, LABEL_JOB_ID } from '../domain/container-labels.js';
import { startStack, type RunningStack } from '../test/support/stack.js';
import {
  ApiClient,
  bareStopAndRemove,
  ContainerEvents,
  docker,
  environment,
  epochOf,
  goalLine,
  progress,
  jobContainers,
  now,
  pollUntil,
  printTable,
  removeBenchContainers,
  RUNS,
  runBench,
  startBareContainer,
  summarize,
  timeProcess,
  WORKER_IMAGE,
  writeResults,
} from './support.js';

const SCRIPT = 'echo hello';
const TICK_SCRIPT = 'echo ready; while true; do echo tick; sleep 0.1; done';
/** The job default, used for the bare baseline too. */
const CANCEL_GRACE_SECONDS = 10;
const WARMUP = 2;
/** HODEI_JOB_SCRATCH_MB's default, which the bench's stack keeps. */
const DEFAULT_SCRATCH_MB = 512;

const runId = randomUUID();
let stack: RunningStack | undefined;
let events: ContainerEvents | undefined;

interface Sample {
  submitMs: number;
  firstLineMs: number;
  succeededMs: number;
  /** From Docker's events, ms after submit: container created, started, exited, removed. */
  createMs?: number;
  startMs?: number;
  dieMs?: number;
  destroyMs?: number;
}

const samples = {
  hodei: [] as Sample[],
  hodeiCold: [] as Sample[],
  /** Pool runs whose job took a pool container (no create event after its submit). */
  poolHits: 0,
  dockerRun: [] as { firstStdoutMs: number; exitMs: number }[],
  cancel: [] as { goneMs: number; cancelledMs: number; killMs?: number; destroyMs?: number }[],
  bareCancel: [] as number[],
};

async function main() {
  console.log(`foundation bench: ${RUNS} runs (+${WARMUP} warm-up), image ${WORKER_IMAGE}, starting a stack…`);
  stack = await startStack({ env: { HODEI_WARM_POOL: '2' } });
  const api = new ApiClient(stack.info.apiUrl, stack.info.apiToken);
  const instanceId = stack.info.instanceId;
  events = await ContainerEvents.watch(`${LABEL_INSTANCE}=${instanceId}`, LABEL_JOB_ID);
  const ev = events;
  const eventTimes = async (jobId: string, t0: number, actions: string[]) => {
    await ev.settle(jobId, 'destroy');
    return Object.fromEntries(actions.map((a) => [`${a}Ms`, ev.firstAfter(jobId, a, epochOf(t0))]));
  };

  const idlePoolContainer = () =>
    pollUntil(
      'an idle warm pool container',
      async () =>
        (
          await docker.listContainers({
            filters: { name: ['hodei-pool-'], label: [`${LABEL_INSTANCE}=${instanceId}`], status: ['running'] },
          })
        ).length > 0,
      20,
      60_000,
    );

  const hodeiRun = (pooled: boolean) => async (record: boolean) => {
    if (pooled) await idlePoolContainer();
    const t0 = now();
    const job = await api.submit({
      script: SCRIPT,
      name: 'bench-foundation',
      // One MiB less scratch than the default: no pool container fits, the cold path it is.
      ...(pooled ? {} : { resources: { scratchMb: DEFAULT_SCRATCH_MB - 1 } }),
    });
    const submitted = now();
    const firstLine = await api.waitForLogs(job.id, (text) => text.includes('hello'));
    const succeeded = await api.waitForState(job.id, 'SUCCEEDED');
    if (!record) return;
    const times = await eventTimes(job.id, t0, ['create', 'start', 'die', 'destroy']);
    if (pooled && times.createMs === undefined) samples.poolHits += 1;
    (pooled ? samples.hodei : samples.hodeiCold).push({
      submitMs: submitted - t0,
      firstLineMs: firstLine - t0,
      succeededMs: succeeded - t0,
      ...times,
    });
  };

  const dockerRun = async (record: boolean) => {
    const run = await timeProcess('docker', ['run', '--rm', '--network', 'none', WORKER_IMAGE, 'bash', '-c', SCRIPT]);
    if (run.stdout.trim() !== 'hello') throw new Error(`docker run printed ${JSON.stringify(run.stdout)}`);
    if (record) samples.dockerRun.push({ firstStdoutMs: run.firstStdoutMs!, exitMs: run.exitMs });
  };

  const cancelRun = async (record: boolean) => {
    const job = await api.submit({
      script: TICK_SCRIPT,
      name: 'bench-foundation-cancel',
      cancelGraceSeconds: CANCEL_GRACE_SECONDS,
    });
    await api.waitForLogs(job.id, (text) => text.includes('tick'), { intervalMs: 20 });
    if ((await jobContainers(instanceId, job.id)).length !== 1)
      throw new Error(`job ${job.id} prints but has no container`);
    const t0 = now();
    await api.cancel(job.id);
    const gone = await pollUntil(
      `job ${job.id}'s container to be gone`,
      async () => (await jobContainers(instanceId, job.id)).length === 0,
      5,
      60_000,
    );
    const cancelled = await api.waitForState(job.id, 'CANCELLED');
    if (!record) return;
    samples.cancel.push({
      goneMs: gone - t0,
      cancelledMs: cancelled - t0,
      ...(await eventTimes(job.id, t0, ['kill', 'destroy'])),
    });
  };

  const bareCancel = async (record: boolean) => {
    const bare = await startBareContainer(runId, TICK_SCRIPT);
    const { goneMs } = await bareStopAndRemove(bare, CANCEL_GRACE_SECONDS);
    if (record) samples.bareCancel.push(goneMs);
  };

  const steps = [hodeiRun(true), hodeiRun(false), dockerRun, cancelRun, bareCancel];
  for (let i = 0; i < WARMUP + RUNS; i++) {
    const record = i >= WARMUP;
    // Rotate the order each round so no series always runs first (or right after a cancel).
    for (let k = 0; k < steps.length; k++) await steps[(i + k) % steps.length]!(record);
    if (record) progress(`run ${i - WARMUP + 1}/${RUNS}`, i === WARMUP + RUNS - 1);
  }

  const firstLine = summarize(samples.hodei.map((s) => s.firstLineMs));
  const succeeded = summarize(samples.hodei.map((s) => s.succeededMs));
  const coldFirstLine = summarize(samples.hodeiCold.map((s) => s.firstLineMs));
  const coldSucceeded = summarize(samples.hodeiCold.map((s) => s.succeededMs));
  const dockerExit = summarize(samples.dockerRun.map((s) => s.exitMs));
  const dockerFirst = summarize(samples.dockerRun.map((s) => s.firstStdoutMs));
  const cancelGone = summarize(samples.cancel.map((s) => s.goneMs));
  const cancelled = summarize(samples.cancel.map((s) => s.cancelledMs));
  const bareGone = summarize(samples.bareCancel);
  const paired = (a: number[], b: number[]) => summarize(a.map((x, i) => x / b[i]!)).median;

  printTable(`Job latency (${SCRIPT}), interleaved with its baseline`, {
    'hodei: submit → POST answered': summarize(samples.hodei.map((s) => s.submitMs)),
    'hodei pool: submit → first log line': firstLine,
    'hodei pool: submit → SUCCEEDED': succeeded,
    'hodei cold: submit → first log line': coldFirstLine,
    'hodei cold: submit → SUCCEEDED': coldSucceeded,
    'docker run: → first stdout byte': dockerFirst,
    'docker run: → exit (wall time)': dockerExit,
  });
  const of = <T>(xs: T[], f: (x: T) => number | undefined) =>
    summarize(xs.flatMap((x) => (f(x) === undefined ? [] : [f(x)!])));
  console.log(`  pool runs that took a pool container: ${samples.poolHits}/${samples.hodei.length}`);
  printTable('  where the time goes, cold path (Docker event timestamps, from the submit request)', {
    'hodei: submit → container created': of(samples.hodeiCold, (s) => s.createMs),
    'hodei: submit → container started': of(samples.hodeiCold, (s) => s.startMs),
    'hodei: submit → script exited (die)': of(samples.hodeiCold, (s) => s.dieMs),
    'hodei: submit → removed (destroy)': of(samples.hodeiCold, (s) => s.destroyMs),
    'hodei pool: submit → script exited (die)': of(samples.hodei, (s) => s.dieMs),
  });
  printTable(`Cancel → container gone (job printing tick every 0.1 s, grace ${CANCEL_GRACE_SECONDS} s)`, {
    'hodei: cancel → container gone': cancelGone,
    'hodei: cancel → CANCELLED': cancelled,
    'bare docker: stop + rm → gone': bareGone,
    'hodei: cancel → stop begins (kill)': of(samples.cancel, (s) => s.killMs),
    'hodei: cancel → removed (destroy)': of(samples.cancel, (s) => s.destroyMs),
  });

  const ratios = {
    firstLineVsDockerRun: firstLine.median / dockerExit.median,
    succeededVsDockerRun: succeeded.median / dockerExit.median,
    firstLineVsDockerFirstByte: firstLine.median / dockerFirst.median,
    pairedFirstLineVsDockerRun: paired(
      samples.hodei.map((s) => s.firstLineMs),
      samples.dockerRun.map((s) => s.exitMs),
    ),
    pairedSucceededVsDockerRun: paired(
      samples.hodei.map((s) => s.succeededMs),
      samples.dockerRun.map((s) => s.exitMs),
    ),
    cancelGoneVsBare: cancelGone.median / bareGone.median,
    coldFirstLineVsDockerRun: coldFirstLine.median / dockerExit.median,
    coldSucceededVsDockerRun: coldSucceeded.median / dockerExit.median,
    pairedColdFirstLineVsDockerRun: paired(
      samples.hodeiCold.map((s) => s.firstLineMs),
      samples.dockerRun.map((s) => s.exitMs),
    ),
  };
  console.log('\nRatios (of medians; "paired" = median of per-round ratios)');
  console.log(
    `  first line / docker run          ${ratios.firstLineVsDockerRun.toFixed(2)}×  (paired ${ratios.pairedFirstLineVsDockerRun.toFixed(2)}×)`,
  );
  console.log(
    `  SUCCEEDED  / docker run          ${ratios.succeededVsDockerRun.toFixed(2)}×  (paired ${ratios.pairedSucceededVsDockerRun.toFixed(2)}×)`,
  );
  console.log(
    `  cold first line / docker run     ${ratios.coldFirstLineVsDockerRun.toFixed(2)}×  (paired ${ratios.pairedColdFirstLineVsDockerRun.toFixed(2)}×)`,
  );
  console.log(`  cold SUCCEEDED / docker run      ${ratios.coldSucceededVsDockerRun.toFixed(2)}×`);
  console.log(`  first line / docker first byte   ${ratios.firstLineVsDockerFirstByte.toFixed(2)}×`);
  console.log(`  cancel→gone / bare stop+rm       ${ratios.cancelGoneVsBare.toFixed(2)}×`);
  console.log('\nGoals (informational; a bench never fails on a timing)');
  console.log(
    goalLine(
      `pool: first line under 1.0× of bare docker run (stretch 0.5×): ${ratios.firstLineVsDockerRun.toFixed(2)}×`,
      ratios.firstLineVsDockerRun < 1.0,
    ),
  );
  console.log(
    goalLine(
      `cold: first line within 1.3× of bare docker run: ${ratios.coldFirstLineVsDockerRun.toFixed(2)}×`,
      ratios.coldFirstLineVsDockerRun <= 1.3,
    ),
  );
  console.log(goalLine(`cancel → gone median under 1 s: ${cancelGone.median.toFixed(0)} ms`, cancelGone.median < 1000));

  const file = writeResults('foundation', {
    bench: 'foundation',
    finishedAt: new Date().toISOString(),
    runs: RUNS,
    warmup: WARMUP,
    script: SCRIPT,
    cancelScript: TICK_SCRIPT,
    cancelGraceSeconds: CANCEL_GRACE_SECONDS,
    environment: await environment(),
    summary: {
      hodeiFirstLineMs: firstLine,
      hodeiSucceededMs: succeeded,
      hodeiColdFirstLineMs: coldFirstLine,
      hodeiColdSucceededMs: coldSucceeded,
      dockerRunExitMs: dockerExit,
      dockerRunFirstStdoutMs: dockerFirst,
      hodeiCancelGoneMs: cancelGone,
      hodeiCancelCancelledMs: cancelled,
      bareStopRemoveGoneMs: bareGone,
    },
    ratios,
    samples,
  });
  console.log(`\nresults: ${file}`);
}

runBench(main, async () => {
  events?.close();
  await removeBenchContainers(runId);
  await stack?.stop();
});
