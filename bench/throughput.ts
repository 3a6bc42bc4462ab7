/**
 * Throughput benchmark (issue 5). On its own stack with total capacity 8:
 *   (1) BENCH_THROUGHPUT_JOBS (default 200) `echo hello` jobs submitted at once, wall time from the
 *       first submit until every one's workflow has closed (a long poll per job on its Temporal
 *       history: watching costs the platform next to nothing), then each one's state through
 *       GET /jobs/:id (all SUCCEEDED), against the same number of bare
 *       `docker run --rm --network none --init <image> bash -c 'echo hello'` run 8 in parallel,
 *       in the order baseline, platform, baseline; the ratio is platform / median baseline.
 *       Job containers alive at once are sampled (docker ps -a every 100 ms) and also counted
 *       exactly from Docker's create/destroy events; both must stay ≤ 8.
 *   (2) BENCH_BURST (default 1000) jobs submitted in a burst (50 POSTs in flight): every one
 *       reaches a terminal state (states counted, none lost), while a sampler GETs a random
 *       submitted job back to back; its latency p50/p95/p99. BENCH_BURST_RUNS (default 5) bursts,
 *       one after another, each reported.
 * Docker's event timestamps break the time down: container create → start → die → destroy, and
 * how long a freed slot stays empty before the next job's container is created.
 * Prints figures, writes JSON to bench/results/. Never fails on a timing.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import proto, { type temporal } from '@temporalio/proto';
import { LABEL_INSTANCE, LABEL_JOB_ID } from '../domain/container-labels.js';
import { startStack, type RunningStack } from '../test/support/stack.js';
import {
  ApiClient,
  BENCH_LABEL,
  ContainerEvents,
  containersWith,
  environment,
  goalLine,
  now,
  percentile,
  positiveInt,
  printTable,
  progress,
  removeBenchContainers,
  runBench,
  sampleLatency,
  sleep,
  summarize,
  timeProcess,
  WORKER_IMAGE,
  writeResults,
  type ContainerEvent,
  type Summary,
  pool,
} from './support.js';
import { LIVE_STATES } from '../activities/host-slots.js';
import { isIdlePoolName } from '../activities/warm-pool.js';

const SCRIPT = 'echo hello';
const CAPACITY = 8;
const JOBS = positiveInt('BENCH_THROUGHPUT_JOBS', 200);
const BURST = positiveInt('BENCH_BURST', 1000);
/** How many times the burst runs, one after another on the same stack (issue 16: 5 runs). */
const BURST_RUNS = positiveInt('BENCH_BURST_RUNS', 5);
const SUBMIT_IN_FLIGHT = 50;
/** Pause between the burst sampler's GETs: one in flight, at most ~100 a second. */
const SAMPLE_GAP_MS = 10;
/** A run with no job finishing for this long is stuck: stop waiting. */
const STALL_MS = 180_000;
/** Jobs whose close is long-polled at once (the rest wait their turn, oldest first). */
const WAIT_IN_FLIGHT = 100;
const CLOSE_EVENT = proto.temporal.api.enums.v1.HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT;
/** How long the platform's processes are watched at rest before its series, ms. */
const IDLE_MS = 3000;

const runId = randomUUID();
let stack: RunningStack | undefined;
const watchers: ContainerEvents[] = [];

/**
 * Waits until every job's workflow has closed: one long poll per job for its close event on
 * Temporal's history (`WAIT_IN_FLIGHT` at once, oldest first: jobs start in submission order), so
 * watching costs the platform one answer per job rather than describes polled through the API
 * (each GET /jobs/:id costs the API and the server a few ms of CPU, counted as theirs per job).
 * The states are read afterwards (`jobStates`). Resolves with `now()` when the last one closed.
 */
async function waitAllClosed(temporal: Client, ids: string[], label: string): Promise<number> {
  let closed = 0;
  let lastProgress = now();
  let stalled: Error | undefined;
  const watchdog = setInterval(() => {
    if (now() - lastProgress > STALL_MS)
      stalled = new Error(`${label}: no job ended for ${STALL_MS / 1000} s; ${ids.length - closed} pending`);
  }, 1000);
  try {
    await pool(ids, WAIT_IN_FLIGHT, async (workflowId) => {
      let nextPageToken: Uint8Array | undefined;
      for (;;) {
        if (stalled) throw stalled;
        const page = await temporal.workflowService.getWorkflowExecutionHistory({
          namespace: temporal.options.namespace,
          execution: { workflowId },
          waitNewEvent: true,
          historyEventFilterType: CLOSE_EVENT,
          skipArchival: true,
          nextPageToken,
        });
        if (page.history?.events?.length) break;
        nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
      }
      closed += 1;
      lastProgress = now();
      progress(`${label}: ${closed}/${ids.length} done`);
    });
  } finally {
    clearInterval(watchdog);
  }
  progress(`${label}: ${closed}/${ids.length} done`, true);
  return now();
}

/** Each job's state through GET /jobs/:id, once: every id must be found. */
async function jobStates(api: ApiClient, ids: string[]): Promise<{ states: Map<string, string>; lost: number }> {
  const states = new Map<string, string>();
  let lost = 0;
  await pool(ids, 20, async (id) => {
    try {
      states.set(id, (await api.job(id)).state);
    } catch {
      lost += 1;
    }
  });
  return { states, lost };
}

/**
 * Samples the live (created or running) containers with `labels` every `intervalMs` until
 * stopped; keeps the largest count. Capacity counts live containers: an exited one waiting to be
 * removed holds no slot.
 */
function sampleContainers(labels: string[], intervalMs: number) {
  let max = 0;
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      // Idle warm pool containers hold no slot: only job containers (created or claimed) count.
      const n = (await containersWith(labels)).filter(
        (c) => LIVE_STATES.includes(c.State) && !c.Names.some(isIdlePoolName),
      ).length;
      max = Math.max(max, n);
      samples += 1;
      await sleep(intervalMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { max, samples };
    },
  };
}

interface Timeline {
  /** Containers alive at once, exactly, from create/destroy events. */
  maxAlive: number;
  /** Per container: create → start, start → die, die → destroy, create → destroy (ms). */
  createToStart: number[];
  startToDie: number[];
  dieToDestroy: number[];
  createToDestroy: number[];
  /** For the k-th created container (k ≥ capacity): ms from the destroy that freed its slot to its create. */
  slotIdle: number[];
  /** Sum of container lifetimes / (capacity × wall): how busy the slots were. */
  slotUse: number;
  /** ms from the run's start to the first create, and from the last destroy to the run's end. */
  firstCreate: number;
  afterLastDestroy: number;
}

/** Breaks a run down from Docker's events of its containers (`byKey`), between epoch `t0` and `t1`. */
function timeline(
  byKey: ReadonlyMap<string, readonly ContainerEvent[]>,
  t0: number,
  t1: number,
  capacity: number,
): Timeline {
  const first = (list: readonly ContainerEvent[], action: string) => list.find((e) => e.action === action)?.at;
  const creates: number[] = [];
  const destroys: number[] = [];
  const out: Timeline = {
    maxAlive: 0,
    createToStart: [],
    startToDie: [],
    dieToDestroy: [],
    createToDestroy: [],
    slotIdle: [],
    slotUse: 0,
    firstCreate: NaN,
    afterLastDestroy: NaN,
  };
  let alive = 0;
  for (const list of byKey.values()) {
    // A claimed warm pool container becomes the job's at its claim (the rename to the job's name).
    const c = first(list, 'create') ?? first(list, 'rename');
    const s = first(list, 'start');
    const d = first(list, 'die');
    const x = first(list, 'destroy');
    if (c !== undefined) creates.push(c);
    // A container holds a capacity slot from its creation until its script ends (die).
    const freed = d ?? x;
    if (freed !== undefined) destroys.push(freed);
    if (c !== undefined && s !== undefined) out.createToStart.push(s - c);
    if (s !== undefined && d !== undefined) out.startToDie.push(d - s);
    if (d !== undefined && x !== undefined) out.dieToDestroy.push(x - d);
    if (c !== undefined && x !== undefined) {
      out.createToDestroy.push(x - c);
      alive += x - c;
    }
  }
  creates.sort((a, b) => a - b);
  destroys.sort((a, b) => a - b);
  const points = [...creates.map((at) => ({ at, d: 1 })), ...destroys.map((at) => ({ at, d: -1 }))].sort(
    (a, b) => a.at - b.at || a.d - b.d,
  );
  let count = 0;
  for (const p of points) out.maxAlive = Math.max(out.maxAlive, (count += p.d));
  for (let k = capacity; k < creates.length; k++) {
    const freed = destroys[k - capacity];
    if (freed !== undefined) out.slotIdle.push(creates[k]! - freed);
  }
  out.slotUse = alive / (capacity * (t1 - t0));
  out.firstCreate = (creates[0] ?? NaN) - t0;
  out.afterLastDestroy = t1 - (destroys[destroys.length - 1] ?? NaN);
  return out;
}

async function main() {
  console.log(
    `throughput bench: ${JOBS} jobs at capacity ${CAPACITY} (baseline, platform, baseline), then ${BURST_RUNS} bursts of ${BURST}; image ${WORKER_IMAGE}; starting a stack…`,
  );
  // BENCH_TEMPORAL_DB=file: the dev server on a database file, as `npm start` runs it (default: in memory).
  stack = await startStack({ capacity: CAPACITY, persistent: process.env.BENCH_TEMPORAL_DB === 'file' });
  console.log(
    `stack data dir (worker and API logs): ${stack.info.dataDir}${process.env.HODEI_KEEP_TEST_DATA ? ' (kept)' : ''}`,
  );
  const api = new ApiClient(stack.info.apiUrl, stack.info.apiToken);
  const instanceId = stack.info.instanceId;
  const jobLabels = [`${LABEL_INSTANCE}=${instanceId}`];
  const jobEvents = await ContainerEvents.watch(jobLabels[0]!, LABEL_JOB_ID);
  const bareEvents = await ContainerEvents.watch(`${BENCH_LABEL}=${runId}`, `${BENCH_LABEL}.id`);
  watchers.push(jobEvents, bareEvents);
  // The jobs' ends are long-polled on a connection of their own, beside the describe sampler's.
  const waitConnection = await Connection.connect({ address: stack.info.temporalAddress });
  const waiter = new Client({ connection: waitConnection, namespace: stack.info.namespace });

  const baseline = async (round: number) => {
    const keys = Array.from({ length: JOBS }, (_, i) => `${round}-${i}`);
    const cpu0 = cpuSnapshot();
    const t0 = now();
    const epoch0 = Date.now();
    await pool(keys, CAPACITY, async (key) => {
      const run = await timeProcess('docker', [
        'run',
        '--rm',
        '--network',
        'none',
        '--init',
        '--label',
        `${BENCH_LABEL}=${runId}`,
        '--label',
        `${BENCH_LABEL}.id=${key}`,
        WORKER_IMAGE,
        'bash',
        '-c',
        SCRIPT,
      ]);
      if (run.stdout.trim() !== 'hello') throw new Error(`docker run printed ${JSON.stringify(run.stdout)}`);
    });
    const wallMs = now() - t0;
    const cpu = cpuDelta(cpu0, cpuSnapshot(), wallMs);
    await sleep(500);
    const events = new Map([...eventsOf(bareEvents)].filter(([k]) => k.startsWith(`${round}-`)));
    return { wallMs, cpu, timeline: timeline(events, epoch0, epoch0 + wallMs, CAPACITY) };
  };

  const platform = async () => {
    // The platform's processes at rest (pollers, timers), subtracted from their CPU per job below.
    const idle0 = cpuSnapshot();
    const idleT0 = now();
    await sleep(IDLE_MS);
    const idle = { before: idle0, after: cpuSnapshot(), ms: now() - idleT0 };
    const sampler = sampleContainers(jobLabels, 100);
    const cpu0 = cpuSnapshot();
    const t0 = now();
    const epoch0 = Date.now();
    const submitted = await Promise.all(
      Array.from({ length: JOBS }, () => api.submit({ script: SCRIPT, name: 'bench-throughput', image: WORKER_IMAGE })),
    );
    const submittedMs = now() - t0;
    const ids = submitted.map((j) => j.id);
    const doneAt = await waitAllClosed(waiter, ids, 'platform');
    const wallMs = doneAt - t0;
    const cpu1 = cpuSnapshot();
    const { states } = await jobStates(api, ids);
    const cpu = cpuDelta(cpu0, cpu1, wallMs);
    const cpuMsPerJob = perJobCpu(idle, cpu0, cpu1, wallMs, JOBS);
    const sampled = await sampler.stop();
    await sleep(500);
    const idSet = new Set(ids);
    const events = new Map([...eventsOf(jobEvents)].filter(([k]) => idSet.has(k)));
    return {
      ids,
      wallMs,
      cpu,
      cpuMsPerJob,
      events,
      submittedMs,
      states: countStates(states),
      sampledMaxAlive: sampled.max,
      samples: sampled.samples,
      timeline: timeline(events, epoch0, epoch0 + wallMs, CAPACITY),
    };
  };

  // Warm-up: the image's layers, the worker's workflow bundle and connections.
  console.log('warm-up…');
  await pool(Array.from({ length: CAPACITY }), CAPACITY, () =>
    timeProcess('docker', [
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
    ]),
  );
  const warm = await Promise.all(
    Array.from({ length: CAPACITY }, () => api.submit({ script: SCRIPT, name: 'bench-warmup' })),
  );
  await waitAllClosed(
    waiter,
    warm.map((j) => j.id),
    'warm-up',
  );

  console.log(`(1) ${JOBS} jobs, ${CAPACITY} at a time`);
  const base1 = await baseline(1);
  console.log(`  baseline 1: ${base1.wallMs.toFixed(0)} ms`);
  const plat = await platform();
  console.log(
    `  platform:   ${plat.wallMs.toFixed(0)} ms (all ${JOBS} POSTs answered after ${plat.submittedMs.toFixed(0)} ms)`,
  );
  // Printed at once: a later step that fails keeps these figures.
  console.log(`  platform CPU per job (idle rate subtracted): ${fmtPerJob(plat.cpuMsPerJob)}`);
  const base2 = await baseline(2);
  console.log(`  baseline 2: ${base2.wallMs.toFixed(0)} ms`);
  const baseMedian = summarize([base1.wallMs, base2.wallMs]).median;
  const ratio = plat.wallMs / baseMedian;

  const { phases, provisionStarted } = await historyPhases(stack.info.temporalAddress, stack.info.namespace, plat.ids);
  const gaps = slotGaps(plat.events, provisionStarted, CAPACITY);

  console.log(
    `\n(2) ${BURST_RUNS} × a burst of ${BURST} jobs, ${SUBMIT_IN_FLIGHT} POSTs in flight, GET /jobs/:id sampled throughout (one in flight, ${SAMPLE_GAP_MS} ms apart)`,
  );
  const bursts = [];
  const temporalConnection = await Connection.connect({ address: stack.info.temporalAddress });
  try {
    const temporal = new Client({ connection: temporalConnection, namespace: stack.info.namespace });
    for (let run = 1; run <= BURST_RUNS; run += 1) {
      const burst = await runBurst(api, instanceId, temporal, waiter);
      console.log(
        `  burst ${run}/${BURST_RUNS}: GET p99 ${burst.get.p99.toFixed(1)} ms (describe direct ${burst.describe.p99.toFixed(1)} ms), ${fmtStates(burst.states)}`,
      );
      bursts.push(burst);
    }
  } finally {
    await temporalConnection.close();
  }
  await waitConnection.close();

  // Report.
  const perJob = (ms: number) => `${(ms / JOBS).toFixed(1)} ms/job, ${((JOBS * 1000) / ms).toFixed(1)} jobs/s`;
  console.log(`\nThroughput: ${JOBS} × \`${SCRIPT}\`, ${CAPACITY} at a time`);
  console.log(
    `  baseline 1 (docker run, ${CAPACITY} parallel)   ${base1.wallMs.toFixed(0).padStart(7)} ms  (${perJob(base1.wallMs)})`,
  );
  console.log(
    `  platform   (capacity ${CAPACITY})              ${plat.wallMs.toFixed(0).padStart(7)} ms  (${perJob(plat.wallMs)})`,
  );
  console.log(
    `  baseline 2 (docker run, ${CAPACITY} parallel)   ${base2.wallMs.toFixed(0).padStart(7)} ms  (${perJob(base2.wallMs)})`,
  );
  console.log(`  ratio platform / median baseline     ${ratio.toFixed(2)}×`);
  console.log(`  platform states: ${fmtStates(plat.states)}`);
  console.log(
    `  job containers alive at once: sampled max ${plat.sampledMaxAlive} (${plat.samples} samples), exact max from events ${plat.timeline.maxAlive}`,
  );

  const tl = { 'baseline 1': base1.timeline, platform: plat.timeline, 'baseline 2': base2.timeline };
  const rows: Record<string, Summary> = {};
  for (const [name, t] of Object.entries(tl)) {
    rows[`${name}: create → start`] = summarize(t.createToStart);
    rows[`${name}: start → die (script)`] = summarize(t.startToDie);
    rows[`${name}: die → destroy`] = summarize(t.dieToDestroy);
    rows[`${name}: create → destroy`] = summarize(t.createToDestroy);
    rows[`${name}: slot empty (destroy → next create)`] = summarize(t.slotIdle);
  }
  printTable('  where the time goes (Docker event timestamps, per container)', rows);
  for (const [name, t] of Object.entries(tl)) {
    console.log(
      `  ${name.padEnd(10)}: slots busy ${(t.slotUse * 100).toFixed(0)}% of ${CAPACITY} × wall; start → first create ${t.firstCreate.toFixed(0)} ms; last destroy → done ${t.afterLastDestroy.toFixed(0)} ms`,
    );
  }

  printTable(
    '  platform, per job, from its Temporal history (activity scheduled / started / completed)',
    Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, summarize(v)])),
  );
  // Pairs the k-th create with the (k − capacity)-th destroy: only meaningful when every job's
  // container was created for it (a claimed warm pool container has no create under the job).
  const created = [...plat.events.values()].filter((list) => list.some((e) => e.action === 'create')).length;
  if (created === JOBS) {
    printTable(
      '  platform: why a freed slot stayed empty (destroy → next create, by whether its provision activity had started)',
      {
        'a provisioner was waiting: destroy → create': summarize(gaps.waiterReady),
        'none was running: destroy → create': summarize(gaps.noWaiter),
        '  of which destroy → provision started': summarize(gaps.noWaiterUntilStart),
      },
    );
  } else {
    console.log(
      `\n  (why freed slots stayed empty: not computed, ${JOBS - created} of ${JOBS} jobs claimed a warm pool container; HODEI_WARM_POOL=0 for it)`,
    );
  }
  console.log('\n  CPU used during each series (2 cores shared with others)');
  const cpuKeys = [...new Set([...Object.keys(base1.cpu), ...Object.keys(plat.cpu), ...Object.keys(base2.cpu)])].sort();
  for (const key of cpuKeys) {
    console.log(
      `  ${key.padEnd(30)} baseline 1 ${(base1.cpu[key] ?? '—').padEnd(28)} platform ${(plat.cpu[key] ?? '—').padEnd(28)} baseline 2 ${base2.cpu[key] ?? '—'}`,
    );
  }

  for (const [i, burst] of bursts.entries()) {
    console.log(`\nBurst ${i + 1}/${BURST_RUNS}: ${BURST} jobs`);
    console.log(
      `  submitted ${burst.submitted}/${BURST} in ${burst.submitMs.toFixed(0)} ms (POST p50 ${burst.post.p50.toFixed(0)} ms, p99 ${burst.post.p99.toFixed(0)} ms); all terminal after ${burst.wallMs.toFixed(0)} ms`,
    );
    console.log(
      `  states: ${fmtStates(burst.states)}; lost ${burst.lost}; containers left ${burst.leftover}; max alive (events) ${burst.maxAlive}`,
    );
    console.log(
      `  GET /jobs/:id during the burst (one in flight, ${SAMPLE_GAP_MS} ms apart): n ${burst.get.n}, p50 ${burst.get.p50.toFixed(1)} ms, p95 ${burst.get.p95.toFixed(1)} ms, p99 ${burst.get.p99.toFixed(1)} ms, max ${burst.get.max.toFixed(1)} ms, errors ${burst.get.errors}`,
    );
    console.log(
      `  Temporal describe, direct, beside it: n ${burst.describe.n}, p50 ${burst.describe.p50.toFixed(1)} ms, p95 ${burst.describe.p95.toFixed(1)} ms, p99 ${burst.describe.p99.toFixed(1)} ms, max ${burst.describe.max.toFixed(1)} ms`,
    );
  }

  const succeeded = (s: Record<string, number>, n: number) => (s.SUCCEEDED ?? 0) === n;
  console.log('\nGoals (informational; a bench never fails on a timing)');
  console.log(goalLine(`platform / docker run ×${CAPACITY} ≤ 1.15: ${ratio.toFixed(2)}×`, ratio <= 1.15));
  console.log(
    goalLine(
      `never more than ${CAPACITY} job containers: sampled ${plat.sampledMaxAlive}, events ${plat.timeline.maxAlive}`,
      Math.max(plat.sampledMaxAlive, plat.timeline.maxAlive) <= CAPACITY,
    ),
  );
  const platformCpu = plat.cpuMsPerJob.total ?? NaN;
  console.log(
    goalLine(
      `platform CPU per job ≤ 44 ms: ${platformCpu.toFixed(1)} ms (${fmtPerJob(plat.cpuMsPerJob)})`,
      platformCpu <= 44,
    ),
  );
  console.log(goalLine(`all ${JOBS} SUCCEEDED: ${fmtStates(plat.states)}`, succeeded(plat.states, JOBS)));
  for (const [i, burst] of bursts.entries()) {
    console.log(
      goalLine(
        `burst ${i + 1}: all ${BURST} complete, none lost: ${fmtStates(burst.states)}, lost ${burst.lost}`,
        succeeded(burst.states, BURST) && burst.lost === 0,
      ),
    );
  }
  const p99s = bursts.map((burst) => burst.get.p99);
  console.log(
    goalLine(
      `burst: GET /jobs/:id p99 under 100 ms in every run: ${p99s.map((p) => p.toFixed(1)).join(', ')} ms (median ${summarize(p99s).median.toFixed(1)})`,
      p99s.every((p) => p < 100),
    ),
  );

  const file = writeResults('throughput', {
    runId,
    at: new Date().toISOString(),
    environment: await environment(),
    settings: {
      jobs: JOBS,
      capacity: CAPACITY,
      burst: BURST,
      burstRuns: BURST_RUNS,
      submitInFlight: SUBMIT_IN_FLIGHT,
      script: SCRIPT,
    },
    throughput: {
      baseline1: base1,
      platform: { ...plat, events: Object.fromEntries(plat.events) },
      baseline2: base2,
      baselineMedianMs: baseMedian,
      ratio,
      historyPhases: phases,
      slotGaps: gaps,
    },
    bursts,
  });
  console.log(`\nsamples: ${file}`);
}

/**
 * One burst. Beside the API's GET sampler, a second one calls Temporal's DescribeWorkflowExecution
 * directly (no API, no payload decoding) on the same schedule: what of a GET's time is the server's.
 */
async function runBurst(api: ApiClient, instanceId: string, temporal: Client, waiter: Client) {
  const ids: string[] = [];
  const postMs: number[] = [];
  const epoch0 = Date.now();
  const t0 = now();
  // Back to back GETs of a random job submitted so far, and beside them the server's describe.
  const getter = sampleLatency(ids, (id) => api.job(id), SAMPLE_GAP_MS);
  const describer = sampleLatency(
    ids,
    (id) =>
      temporal.workflowService.describeWorkflowExecution({
        namespace: temporal.options.namespace,
        execution: { workflowId: id },
      }),
    SAMPLE_GAP_MS,
  );
  let submitErrors = 0;
  await pool(Array.from({ length: BURST }), SUBMIT_IN_FLIGHT, async () => {
    const start = now();
    try {
      const job = await api.submit({ script: SCRIPT, name: 'bench-burst' });
      postMs.push(now() - start);
      ids.push(job.id);
    } catch (err) {
      submitErrors += 1;
      if (submitErrors <= 3) console.error(`  submit failed: ${String(err)}`);
    }
  });
  const submitMs = now() - t0;
  const doneAt = await waitAllClosed(waiter, [...ids], 'burst');
  const wallMs = doneAt - t0;
  const [gets, describes] = await Promise.all([getter.stop(), describer.stop()]);
  const getMs = gets.samplesMs;
  // One GET per job: each submitted id must be found, terminal.
  const { states: finalStates, lost: notFound } = await jobStates(api, ids);
  const lost = notFound + BURST - ids.length;
  await sleep(1000);
  // The warm pool's idle containers wait for the next job: not left over.
  const leftover = (await containersWith([`${LABEL_INSTANCE}=${instanceId}`])).filter(
    (c) => !c.Names.some(isIdlePoolName),
  ).length;
  const idSet = new Set(ids);
  const events = new Map([...eventsOf(watchers[0]!)].filter(([k]) => idSet.has(k)));
  const tl = timeline(events, epoch0, epoch0 + wallMs, CAPACITY);
  const pct = (xs: number[]) => ({
    n: xs.length,
    p50: percentile(xs, 50),
    p95: percentile(xs, 95),
    p99: percentile(xs, 99),
    max: Math.max(...xs),
  });
  return {
    submitted: ids.length,
    submitErrors,
    submitMs,
    wallMs,
    states: countStates(finalStates),
    lost,
    leftover,
    maxAlive: tl.maxAlive,
    post: pct(postMs),
    get: { ...pct(getMs), errors: gets.errors },
    describe: pct(describes.samplesMs),
    getSamplesMs: getMs,
  };
}

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const epochMs = (e: HistoryEvent | undefined) =>
  e?.eventTime ? Number(e.eventTime.seconds ?? 0) * 1000 + (e.eventTime.nanos ?? 0) / 1e6 : NaN;

/**
 * Per job, from its workflow history: how long each step waited in a task queue and ran.
 * (An activity's started event carries the time a worker picked the task up.)
 */
async function historyPhases(
  address: string,
  namespace: string,
  ids: string[],
): Promise<{ phases: Record<string, number[]>; provisionStarted: Map<string, number> }> {
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace });
  const phases: Record<string, number[]> = {};
  const provisionStarted = new Map<string, number>();
  const add = (name: string, ms: number) => {
    if (Number.isFinite(ms)) (phases[name] ??= []).push(ms);
  };
  try {
    await pool(ids, 8, async (id) => {
      const events = (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
      const started = events.find((e) => e.workflowExecutionStartedEventAttributes);
      const completed = events.find((e) => e.workflowExecutionCompletedEventAttributes);
      const firstWft = events.find((e) => e.workflowTaskStartedEventAttributes);
      add('workflow started → first workflow task', epochMs(firstWft) - epochMs(started));
      const activity = (name: string) => {
        const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === name);
        if (!scheduled) return undefined;
        const sid = Number(scheduled.eventId);
        const start = events.find((e) => Number(e.activityTaskStartedEventAttributes?.scheduledEventId) === sid);
        const done = events.find((e) => Number(e.activityTaskCompletedEventAttributes?.scheduledEventId) === sid);
        return {
          scheduled: epochMs(scheduled),
          started: epochMs(start),
          completed: epochMs(done),
          attempts: start?.activityTaskStartedEventAttributes?.attempt ?? 1,
        };
      };
      const provision = activity('provisionContainer');
      const run = activity('runScript');
      // A script that ended on its own has its container removed by the run activity: no remove activity.
      const remove = activity('removeContainer');
      if (!provision || !run) return;
      provisionStarted.set(id, provision.started);
      add('started → provision scheduled', provision.scheduled - epochMs(started));
      add('provision: queued (scheduled → started)', provision.started - provision.scheduled);
      add('provision: ran (slot wait + create)', provision.completed - provision.started);
      add('provision done → run scheduled', run.scheduled - provision.completed);
      add('run: queued on host queue', run.started - run.scheduled);
      add('run: ran (start … exit, logs)', run.completed - run.started);
      if (remove) {
        add('run done → remove scheduled', remove.scheduled - run.completed);
        add('remove: queued on host queue', remove.started - remove.scheduled);
        add('remove: ran', remove.completed - remove.started);
      }
      add('last activity done → workflow completed', epochMs(completed) - (remove ?? run).completed);
      add('workflow started → completed', epochMs(completed) - epochMs(started));
    });
  } finally {
    await connection.close();
  }
  return { phases, provisionStarted };
}

/**
 * Why a freed slot stayed empty: for the k-th container created (k ≥ capacity), the destroy that
 * freed its slot, and when its job's provision activity started. Started before → a provisioner
 * was already waiting for the slot, and the gap is the wake-up plus the create call; started
 * after → no provision activity was running (all executors busy), and the slot waited for one.
 */
function slotGaps(
  byKey: ReadonlyMap<string, readonly ContainerEvent[]>,
  provisionStarted: Map<string, number>,
  capacity: number,
) {
  const creates = [...byKey.entries()]
    .map(([id, list]) => ({ id, at: list.find((e) => e.action === 'create')?.at }))
    .filter((c): c is { id: string; at: number } => c.at !== undefined)
    .sort((a, b) => a.at - b.at);
  const destroys = [...byKey.values()]
    .flatMap((list) => list.filter((e) => e.action === 'destroy').map((e) => e.at))
    .sort((a, b) => a - b);
  const waiterReady: number[] = [];
  const noWaiter: number[] = [];
  const noWaiterUntilStart: number[] = [];
  for (let k = capacity; k < creates.length; k++) {
    const freed = destroys[k - capacity];
    const started = provisionStarted.get(creates[k]!.id);
    if (freed === undefined || started === undefined) continue;
    if (started <= freed) waiterReady.push(creates[k]!.at - freed);
    else {
      noWaiter.push(creates[k]!.at - freed);
      noWaiterUntilStart.push(started - freed);
    }
  }
  return { waiterReady, noWaiter, noWaiterUntilStart };
}

/** CPU seconds used so far by this bench's children (by role), dockerd, containerd and shims, and the whole machine. */
function cpuSnapshot(): Record<string, number> {
  const tick = 100;
  const out: Record<string, number> = {};
  const addTo = (key: string, v: number) => (out[key] = (out[key] ?? 0) + v);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      const ppid = Number(fields[1]);
      const cpu = (Number(fields[11]) + Number(fields[12])) / tick;
      if (Number(entry) === process.pid) {
        addTo('bench (this process)', cpu);
        // Children it has reaped: the baseline's docker CLI processes.
        addTo('docker CLI (reaped children)', (Number(fields[13]) + Number(fields[14])) / tick);
      } else if (ppid === process.pid) {
        const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        const role = cmd.includes('worker/main.ts')
          ? 'worker'
          : cmd.includes('api/main.ts')
            ? 'api'
            : cmd.includes('start-dev')
              ? 'temporal server'
              : 'docker CLI (running)';
        addTo(role, cpu);
      } else if (comm === 'dockerd') addTo('dockerd', cpu);
      else if (comm === 'containerd') addTo('containerd', cpu);
      else if (comm.startsWith('containerd-shim')) addTo('containerd-shim (live ones)', cpu);
    } catch {
      // The process ended meanwhile.
    }
  }
  const total = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const idle = (total[3] ?? 0) + (total[4] ?? 0);
  addTo('machine busy', (total.reduce((a, b) => a + b, 0) - idle) / tick);
  return out;
}

function cpuDelta(
  before: Record<string, number>,
  after: Record<string, number>,
  wallMs: number,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(after)) {
    const used = after[key]! - (before[key] ?? 0);
    out[key] = `${used.toFixed(1)} s (${((used * 1000 * 100) / wallMs).toFixed(0)}% of one core)`;
  }
  return out;
}

/** The platform's own processes, whose CPU per job the bench reports. */
const PLATFORM_ROLES = ['temporal server', 'worker', 'api'] as const;

/**
 * CPU ms per job of each platform process over a series (`before` → `after`, `wallMs` long), less
 * what it uses at rest (its rate over `idle`, times the series' wall time), and their total.
 */
function perJobCpu(
  idle: { before: Record<string, number>; after: Record<string, number>; ms: number },
  before: Record<string, number>,
  after: Record<string, number>,
  wallMs: number,
  jobs: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  let total = 0;
  for (const role of PLATFORM_ROLES) {
    const idleRate = ((idle.after[role] ?? 0) - (idle.before[role] ?? 0)) / idle.ms;
    const used = (after[role] ?? 0) - (before[role] ?? 0) - idleRate * wallMs;
    out[role] = (used * 1000) / jobs;
    total += out[role];
  }
  out.total = total;
  return out;
}

const fmtPerJob = (perJob: Record<string, number>) =>
  Object.entries(perJob)
    .map(([k, v]) => `${k} ${v.toFixed(1)} ms`)
    .join(', ');

const eventsOf = (watcher: ContainerEvents) => watcher.all();

function countStates(states: Map<string, string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const state of states.values()) counts[state] = (counts[state] ?? 0) + 1;
  return counts;
}

const fmtStates = (s: Record<string, number>) =>
  Object.entries(s)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || 'none';

runBench(main, async () => {
  for (const w of watchers) w.close();
  await removeBenchContainers(runId);
  await stack?.stop();
});
