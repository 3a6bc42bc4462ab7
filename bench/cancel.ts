/**
 * Cancellation benchmark (issue 4). On its own stack: cancel request → container gone (docker ps -a
 * by label, polled every 5 ms), BENCH_RUNS (default 20) running jobs per path and kind:
 *   paths: the API (POST /jobs/:id/cancel), the CLI (`temporal workflow cancel`, process start
 *          included), and a baseline: a bare container running the same script, stopped with
 *          the same grace and removed by Docker alone.
 *   kinds: (i) a job that exits on SIGTERM, cancelGraceSeconds 0;
 *          (ii) a job that ignores SIGTERM, cancelGraceSeconds 2 (so SIGKILL ends it).
 * Jobs start in batches (BENCH_BATCH per path, default 5) and are cancelled one at a time in a
 * rotating path order, so each cancel is measured alone and load drifts hit every path alike.
 * Prints medians and p95; writes JSON to bench/results/. Never fails on a timing.
 */
import { randomUUID } from 'node:crypto';
import { LABEL_INSTANCE, LABEL_JOB_ID } from '../domain/container-labels.js';
import { startStack, TEMPORAL_BIN, type RunningStack } from '../test/support/stack.js';
import {
  ApiClient,
  bareStopAndRemove,
  BENCH_LABEL,
  ContainerEvents,
  environment,
  epochOf,
  goalLine,
  jobContainers,
  now,
  positiveInt,
  printTable,
  progress,
  removeBenchContainers,
  RUNS,
  runBench,
  startBareContainer,
  summarize,
  timeProcess,
  waitForNoContainer,
  writeResults,
  type BareContainer,
  type Summary,
} from './support.js';

const BATCH = positiveInt('BENCH_BATCH', 5);

interface Kind {
  name: string;
  title: string;
  script: string;
  graceSeconds: number;
}

const KINDS: Kind[] = [
  {
    name: 'exits-on-term',
    title: '(i) job exits on SIGTERM, cancelGraceSeconds 0',
    script: "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    graceSeconds: 0,
  },
  {
    name: 'ignores-term',
    title: '(ii) job ignores SIGTERM, cancelGraceSeconds 2',
    script: "trap '' TERM; echo ready; while true; do sleep 0.1; done",
    graceSeconds: 2,
  },
];

type Path = 'api' | 'cli' | 'bare';
const PATHS: Path[] = ['api', 'cli', 'bare'];

interface Sample {
  /** cancel request → the container is no longer listed by Docker. */
  goneMs: number;
  /** cancel request → GET /jobs/:id says CANCELLED (hodei paths). */
  cancelledMs?: number;
  /** cancel request → the cancel call returned (HTTP answer, CLI exit, docker stop + rm). */
  requestMs: number;
  /** From Docker's events: cancel request → first kill (SIGTERM sent), → die (process gone), → destroy (removed). */
  killMs?: number;
  dieMs?: number;
  destroyMs?: number;
}

type Target = { path: 'api' | 'cli'; jobId: string } | { path: 'bare'; bare: BareContainer };

const runId = randomUUID();
let stack: RunningStack | undefined;
let jobEvents: ContainerEvents | undefined;
let bareEvents: ContainerEvents | undefined;

async function main() {
  console.log(`cancel bench: ${RUNS} cancels per path and kind, batches of ${BATCH} per path, starting a stack…`);
  stack = await startStack({ capacity: 2 * BATCH + 2 });
  const { apiUrl, instanceId, temporalAddress, namespace } = stack.info;
  const api = new ApiClient(apiUrl, stack.info.apiToken);
  jobEvents = await ContainerEvents.watch(`${LABEL_INSTANCE}=${instanceId}`, LABEL_JOB_ID);
  bareEvents = await ContainerEvents.watch(`${BENCH_LABEL}=${runId}`, `${BENCH_LABEL}.id`);
  const breakdown = async (events: ContainerEvents, key: string, t0: number) => {
    await events.settle(key, 'destroy');
    const since = epochOf(t0);
    return {
      killMs: events.firstAfter(key, 'kill', since),
      dieMs: events.firstAfter(key, 'die', since),
      destroyMs: events.firstAfter(key, 'destroy', since),
    };
  };

  const start = async (kind: Kind, path: Path): Promise<Target> => {
    if (path === 'bare') return { path, bare: await startBareContainer(runId, kind.script) };
    const job = await api.submit({
      script: kind.script,
      name: `bench-cancel-${kind.name}`,
      cancelGraceSeconds: kind.graceSeconds,
    });
    // `ready` is printed after the trap is set, so the signal disposition is in place.
    await api.waitForLogs(job.id, (text) => text.includes('ready'), { intervalMs: 20 });
    if ((await jobContainers(instanceId, job.id)).length !== 1)
      throw new Error(`job ${job.id} prints but has no container`);
    return { path, jobId: job.id };
  };

  const cancel = async (kind: Kind, target: Target): Promise<Sample> => {
    if (target.path === 'bare') {
      const { started, goneMs } = await bareStopAndRemove(target.bare, kind.graceSeconds);
      return { goneMs, requestMs: goneMs, ...(await breakdown(bareEvents!, target.bare.key, started)) };
    }
    const labels = [`${LABEL_JOB_ID}=${target.jobId}`, `${LABEL_INSTANCE}=${instanceId}`];
    const t0 = now();
    let requested: Promise<number>;
    if (target.path === 'api') {
      requested = api.cancel(target.jobId).then(() => now());
    } else {
      requested = timeProcess(TEMPORAL_BIN, [
        'workflow',
        'cancel',
        '--address',
        temporalAddress,
        '--namespace',
        namespace,
        '--workflow-id',
        target.jobId,
      ]).then(() => now());
    }
    // Poll for the container from the moment of the request: the CLI may exit after it is gone.
    const [gone, answered] = await Promise.all([waitForNoContainer(labels), requested]);
    const cancelled = await api.waitForState(target.jobId, 'CANCELLED', { intervalMs: 10 });
    return {
      goneMs: gone - t0,
      cancelledMs: cancelled - t0,
      requestMs: answered - t0,
      ...(await breakdown(jobEvents!, target.jobId, t0)),
    };
  };

  const results: Record<string, Record<Path, Sample[]>> = {};
  for (const kind of KINDS) {
    const samples: Record<Path, Sample[]> = { api: [], cli: [], bare: [] };
    results[kind.name] = samples;
    console.log(`\n${kind.title}`);
    // Warm-up round (not recorded): first CLI start, first stop with this grace, etc.
    for (const path of PATHS) await cancel(kind, await start(kind, path));

    let round = 0;
    while (samples.api.length < RUNS) {
      const size = Math.min(BATCH, RUNS - samples.api.length);
      const batch: Target[][] = await Promise.all(
        Array.from({ length: size }, () => Promise.all(PATHS.map((path) => start(kind, path)))),
      );
      for (const targets of batch) {
        // Rotate which path goes first, so none always cancels right after the same one.
        for (let k = 0; k < PATHS.length; k++) {
          const target = targets[(round + k) % PATHS.length]!;
          samples[target.path].push(await cancel(kind, target));
        }
        round++;
        progress(`${samples.api.length}/${RUNS} per path`, samples.api.length === RUNS);
      }
    }
  }

  const summary: Record<string, Record<string, Summary>> = {};
  const goals: string[] = [];
  for (const kind of KINDS) {
    const s = results[kind.name]!;
    const rows: Record<string, Summary> = {
      'API: cancel → container gone': summarize(s.api.map((x) => x.goneMs)),
      'CLI: cancel → container gone': summarize(s.cli.map((x) => x.goneMs)),
      'bare docker: stop + rm → gone': summarize(s.bare.map((x) => x.goneMs)),
      'API: cancel → CANCELLED': summarize(s.api.map((x) => x.cancelledMs!)),
      'CLI: cancel → CANCELLED': summarize(s.cli.map((x) => x.cancelledMs!)),
      'API: POST /cancel answered': summarize(s.api.map((x) => x.requestMs)),
      'CLI: temporal process exited': summarize(s.cli.map((x) => x.requestMs)),
    };
    const breakdownRows: Record<string, Summary> = {};
    const label = { api: 'API', cli: 'CLI', bare: 'bare' } as const;
    for (const path of PATHS) {
      for (const [field, what] of [
        ['killMs', 'stop begins (kill)'],
        ['dieMs', 'process dead (die)'],
        ['destroyMs', 'removed (destroy)'],
      ] as const) {
        breakdownRows[`${label[path]}: cancel → ${what}`] = summarize(
          s[path].flatMap((x) => (x[field] === undefined ? [] : [x[field]])),
        );
      }
    }
    summary[kind.name] = { ...rows, ...breakdownRows };
    printTable(`Cancel → container gone, ${kind.title}`, rows);
    printTable('  where the time goes (Docker event timestamps, from the cancel request)', breakdownRows);
    const bound = kind.graceSeconds * 1000 + 1000;
    const boundText = kind.graceSeconds === 0 ? '1 s' : `grace + 1 s = ${bound / 1000} s`;
    for (const path of ['API', 'CLI'] as const) {
      const p95 = rows[`${path}: cancel → container gone`]!.p95;
      goals.push(goalLine(`${kind.name}, ${path}: p95 ${p95.toFixed(0)} ms under ${boundText}`, p95 < bound));
    }
    const bare = rows['bare docker: stop + rm → gone']!.median;
    console.log(
      `  ratio of medians to bare docker: API ${(rows['API: cancel → container gone']!.median / bare).toFixed(2)}×, ` +
        `CLI ${(rows['CLI: cancel → container gone']!.median / bare).toFixed(2)}×`,
    );
  }
  console.log('\nGoals (informational; a bench never fails on a timing)');
  for (const line of goals) console.log(line);

  const file = writeResults('cancel', {
    bench: 'cancel',
    finishedAt: new Date().toISOString(),
    runs: RUNS,
    batch: BATCH,
    kinds: KINDS,
    environment: await environment(),
    summary,
    samples: results,
  });
  console.log(`\nresults: ${file}`);
}

runBench(main, async () => {
  jobEvents?.close();
  bareEvents?.close();
  await removeBenchContainers(runId);
  await stack?.stop();
});
