/**
 * Records workflow histories of the current workflow code for the replay test
 * (test/workflow/replay.test.ts): starts a test stack, runs one job per path through `runJob`
 * (success, success with a secret, script failure, retry, cancel while running, timeout, concurrency keys),
 * the semaphore workflow of the concurrency key, and one pipeline per path through `runPipeline`
 * (a diamond that succeeds, a failed step with skipped dependants, cancel while a step runs), and
 * writes each history to
 * test/fixtures/histories/<commit of workflows/>/<case>.json. Run it after changing workflow
 * logic, and keep the older directories: the current code must replay them all. Payloads are
 * encrypted with the fixtures' own codec key (test/support/fixture-codec.ts), which the replay
 * test holds too.
 *
 *   node --import tsx scripts/record-histories.ts
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createApiClient, type JobSpec, type PipelineSpec } from '../api-client/index.js';
import { concurrencyWorkflowId } from '../domain/concurrency.js';
import { TERMINAL_STATES, type JobState } from '../domain/job-state.js';
import { PIPELINE_TERMINAL_STATES, stepJobId, type PipelineState } from '../domain/pipeline-state.js';
import { FIXTURE_CODEC_KEY } from '../test/support/fixture-codec.js';
import { ROOT, startStack } from '../test/support/stack.js';
import { waitFor } from '../test/support/wait.js';

const stack = await startStack({ capacity: 4, env: { HODEI_CODEC_KEY: FIXTURE_CODEC_KEY } });
try {
  const { apiUrl, apiToken, temporalAddress, namespace } = stack.info;
  const api = createApiClient({ baseUrl: apiUrl, token: apiToken });
  const ok = <T>({ data, error, response }: { data?: T; error?: unknown; response: Response }): T => {
    if (response.status >= 300 || data === undefined)
      throw new Error(`${response.url} answered ${response.status}: ${JSON.stringify(error)}`);
    return data;
  };
  const submit = async (spec: JobSpec) => ok(await api.POST('/jobs', { body: spec }));
  const waitState = (id: string, states: readonly JobState[]) =>
    waitFor(
      `job ${id} to reach ${states.join('|')}`,
      async () => {
        const job = ok(await api.GET('/jobs/{id}', { params: { path: { id } } }));
        return states.includes(job.state) ? job : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 100 },
    );

  const cases: Record<string, string> = {};
  cases.succeeded = (await submit({ script: 'echo hello', labels: { case: 'succeeded' } })).id;
  cases['succeeded-with-secret'] = (await submit({ script: 'echo "$TOKEN"', secrets: { TOKEN: 'fixture-secret' } })).id;
  cases['failed-exit-3'] = (await submit({ script: 'echo oops >&2; exit 3' })).id;
  cases['retried-then-failed'] = (await submit({ script: 'exit 2', retries: 1 })).id;
  cases['timed-out'] = (await submit({ script: 'sleep 60', timeoutSeconds: 1, cancelGraceSeconds: 0 })).id;
  const running = await submit({ script: 'sleep 300', cancelGraceSeconds: 0 });
  cases['cancelled-while-running'] = running.id;
  await waitState(running.id, ['RUNNING']);
  ok(await api.POST('/jobs/{id}/cancel', { params: { path: { id: running.id } } }));
  // A concurrency key: one job holding its permit, one cancelled while it waits, one after them;
  // then the key's semaphore workflow itself (still open: its history so far replays too).
  const key = `fixture-${Date.now()}`;
  const concurrency = { key, limit: 1 };
  cases['concurrency-held'] = (await submit({ script: 'sleep 2', concurrency })).id;
  await waitState(cases['concurrency-held'], ['RUNNING']);
  cases['concurrency-cancelled-while-waiting'] = (await submit({ script: 'echo never', concurrency })).id;
  cases['concurrency-waited'] = (await submit({ script: 'echo waited', concurrency })).id;
  ok(await api.POST('/jobs/{id}/cancel', { params: { path: { id: cases['concurrency-cancelled-while-waiting'] } } }));
  for (const id of Object.values(cases)) await waitState(id, TERMINAL_STATES);
  cases['concurrency-key-semaphore'] = concurrencyWorkflowId(key);

  // Pipelines: their own histories (each step's job is a runJob history like those above).
  const pipelineCases: Record<string, string> = {};
  const submitPipeline = async (spec: PipelineSpec) => ok(await api.POST('/pipelines', { body: spec })).id;
  const waitPipeline = (id: string, states: readonly PipelineState[]) =>
    waitFor(
      `pipeline ${id} to reach ${states.join('|')}`,
      async () => {
        const p = ok(await api.GET('/pipelines/{id}', { params: { path: { id } } }));
        return states.includes(p.state) ? p : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 100 },
    );
  pipelineCases['pipeline-succeeded'] = await submitPipeline({
    steps: [
      { name: 'build', job: { script: 'echo build' } },
      { name: 'test-a', needs: ['build'], job: { script: 'echo a' } },
      { name: 'test-b', needs: ['build'], job: { script: 'echo b' } },
      { name: 'package', needs: ['test-a', 'test-b'], job: { script: 'echo package' } },
    ],
  });
  pipelineCases['pipeline-failed'] = await submitPipeline({
    steps: [
      { name: 'bad', job: { script: 'exit 3' } },
      { name: 'after', needs: ['bad'], job: { script: 'echo never' } },
      { name: 'other', job: { script: 'echo other' } },
      { name: 'flaky', allowFailure: true, job: { script: 'exit 1' } },
    ],
  });
  const runningPipeline = await submitPipeline({
    steps: [
      { name: 'long', job: { script: 'sleep 300', cancelGraceSeconds: 0 } },
      { name: 'then', needs: ['long'], job: { script: 'echo never' } },
    ],
  });
  pipelineCases['pipeline-cancelled-while-running'] = runningPipeline;
  await waitState(stepJobId(runningPipeline, 'long'), ['RUNNING']);
  ok(await api.POST('/pipelines/{id}/cancel', { params: { path: { id: runningPipeline } } }));
  for (const id of Object.values(pipelineCases)) await waitPipeline(id, PIPELINE_TERMINAL_STATES);
  Object.assign(cases, pipelineCases);

  const commit = execFileSync('git', ['log', '-1', '--format=%h', '--', 'workflows/'], {
    cwd: ROOT,
    encoding: 'utf8',
  }).trim();
  const dir = path.join(ROOT, 'test/fixtures/histories', commit || 'uncommitted');
  mkdirSync(dir, { recursive: true });
  for (const [name, id] of Object.entries(cases)) {
    // The CLI's JSON is the proto3 JSON that historyFromJSON (and the replayer) read.
    const json = execFileSync(
      path.join(ROOT, '.tools/bin/temporal'),
      [
        'workflow',
        'show',
        '--address',
        temporalAddress,
        '--namespace',
        namespace,
        '--workflow-id',
        id,
        '--output',
        'json',
      ],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    const events = (JSON.parse(json) as { events: unknown[] }).events.length;
    writeFileSync(path.join(dir, `${name}.json`), json.endsWith('\n') ? json : `${json}\n`);
    console.log(`recorded ${name} (${events} events) → ${path.relative(ROOT, dir)}/${name}.json`);
  }
} finally {
  await stack.stop();
}
