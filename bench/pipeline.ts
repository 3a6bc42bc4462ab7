/**
 * Pipeline benchmark (issue 15). On its own stack: a 20-step chain of `echo` steps run as one
 * pipeline (wall time from POST /pipelines until GET /pipelines/:id says SUCCEEDED), against the
 * same 20 jobs submitted one after another by a client that waits for each to be SUCCEEDED
 * before submitting the next (the baseline, a client driving the steps itself), alternating
 * baseline and pipeline BENCH_PIPELINE_RUNS times (default 5) in the same run. Both sides poll
 * every 20 ms. Goal: pipeline ≤ 1.0× the baseline's median. Prints figures, writes JSON to
 * bench/results/. Never fails on a timing.
 */
import { createApiClient } from '../api-client/index.js';
import { PIPELINE_TERMINAL_STATES } from '../domain/pipeline-state.js';
import { startStack, type RunningStack } from '../test/support/stack.js';
import {
  ApiClient,
  environment,
  goalLine,
  now,
  pollUntil,
  positiveInt,
  printTable,
  progress,
  runBench,
  summarize,
  writeResults,
} from './support.js';

const STEPS = 20;
const RUNS = positiveInt('BENCH_PIPELINE_RUNS', 5);
const POLL_MS = 20;
let stack: RunningStack | undefined;

runBench(
  async () => {
    stack = await startStack({ capacity: 8 });
    const { apiUrl, apiToken } = stack.info;
    const jobs = new ApiClient(apiUrl, apiToken);
    const api = createApiClient({ baseUrl: apiUrl, token: apiToken });
    const names = Array.from({ length: STEPS }, (_, i) => `s${String(i).padStart(2, '0')}`);

    const clientDriven = async () => {
      const started = now();
      for (const name of names) {
        const job = await jobs.submit({ script: `echo ${name}` });
        await jobs.waitForState(job.id, 'SUCCEEDED', { intervalMs: POLL_MS, timeoutMs: 120_000 });
      }
      return now() - started;
    };
    const pipeline = async () => {
      const started = now();
      const { data, response } = await api.POST('/pipelines', {
        body: {
          steps: names.map((name, i) => ({
            name,
            needs: i === 0 ? [] : [names[i - 1]!],
            job: { script: `echo ${name}` },
          })),
        },
      });
      if (response.status !== 201 || !data) throw new Error(`POST /pipelines answered ${response.status}`);
      let state = '';
      await pollUntil(
        `pipeline ${data.id}`,
        async () => {
          const p = (await api.GET('/pipelines/{id}', { params: { path: { id: data.id } } })).data!;
          state = p.state;
          return PIPELINE_TERMINAL_STATES.includes(p.state);
        },
        POLL_MS,
        300_000,
      );
      if (state !== 'SUCCEEDED') throw new Error(`pipeline ${data.id} ended ${state}`);
      return now() - started;
    };

    // One warm-up of each (image cache, workflow bundle), not counted.
    await clientDriven();
    await pipeline();
    const baseline: number[] = [];
    const platform: number[] = [];
    for (let run = 1; run <= RUNS; run += 1) {
      progress(`run ${run}/${RUNS}: client-driven chain`);
      baseline.push(await clientDriven());
      progress(`run ${run}/${RUNS}: pipeline`);
      platform.push(await pipeline());
    }
    progress('', true);
    const rows = {
      [`client submits ${STEPS} jobs one after another`]: summarize(baseline),
      [`one pipeline, ${STEPS}-step chain`]: summarize(platform),
    };
    printTable(`20-step chain of echo steps (${RUNS} runs each, alternating)`, rows);
    const ratio = summarize(platform).median / summarize(baseline).median;
    console.log(`\n  ratio pipeline / client-driven (medians): ${ratio.toFixed(2)}×`);
    console.log(goalLine(`pipeline ≤ 1.0× client-driven: ${ratio.toFixed(2)}×`, ratio <= 1.0));
    const file = writeResults('pipeline', {
      environment: await environment(),
      steps: STEPS,
      runs: RUNS,
      baselineMs: baseline,
      pipelineMs: platform,
      summary: rows,
      ratio,
    });
    console.log(`\n  results: ${file}`);
  },
  async () => {
    await stack?.stop();
  },
);
