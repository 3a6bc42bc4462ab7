import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiClient, type PipelineSpec, type PipelineView } from '../../api-client/index.js';
import { PIPELINE_TERMINAL_STATES, stepJobId } from '../../domain/pipeline-state.js';
import {
  docker,
  eventJob,
  isJobContainerCreated,
  watchContainerEvents,
  type ContainerEvent,
} from '../support/api-client.js';
import { startStack, type RunningStack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

// A stack of this file's own (capacity 8), since its tests stop and kill its worker.
const CAPACITY = 8;
let stack: RunningStack;
let client: ReturnType<typeof createApiClient>;

beforeAll(async () => {
  stack = await startStack({ capacity: CAPACITY });
  client = createApiClient({ baseUrl: stack.info.apiUrl, token: stack.info.apiToken });
});
afterAll(() => stack?.stop());

async function submit(spec: PipelineSpec): Promise<PipelineView> {
  const { data, response, error } = await client.POST('/pipelines', { body: spec });
  if (response.status !== 201 || !data) throw new Error(`submit answered ${response.status}: ${JSON.stringify(error)}`);
  return data;
}

const get = async (id: string) => (await client.GET('/pipelines/{id}', { params: { path: { id } } })).data!;
const waitForEnd = (id: string, timeoutMs = 180_000) =>
  waitFor(
    `pipeline ${id} to end`,
    async () => {
      const p = await get(id).catch(() => undefined);
      return p && PIPELINE_TERMINAL_STATES.includes(p.state) ? p : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );

/** This stack's container events, live from now on. */
async function watchEvents() {
  const watch = watchContainerEvents(docker, stack.info.instanceId);
  await watch.ready;
  return watch;
}

describe('pipelines under faults and load', () => {
  it('cancelled before anything started: every step SKIPPED, no container ever created', async () => {
    await stack.stopWorker();
    const watch = await watchEvents();
    let p: PipelineView;
    try {
      p = await submit({
        steps: [
          { name: 'first', job: { script: 'echo never' } },
          { name: 'second', needs: ['first'], job: { script: 'echo never' } },
        ],
      });
      const res = await client.POST('/pipelines/{id}/cancel', { params: { path: { id: p.id } } });
      expect(res.response.status).toBe(202);
    } finally {
      await stack.startWorker();
    }
    const done = await waitForEnd(p.id, 60_000);
    expect(done.state).toBe('CANCELLED');
    expect(done.steps.map((s) => s.state)).toEqual(['SKIPPED', 'SKIPPED']);
    expect(done.steps.every((s) => s.jobId === undefined)).toBe(true);
    const created = watch.stop().filter((e) => isJobContainerCreated(e) && eventJob(e)?.startsWith(p.id));
    expect(created).toEqual([]);
  });

  it('worker killed -9 mid-pipeline: no step runs twice, the pipeline completes', async () => {
    const watch = await watchEvents();
    const chain = ['one', 'two', 'three', 'four'];
    const p = await submit({
      steps: chain.map((name, i) => ({
        name,
        needs: i === 0 ? [] : [chain[i - 1]!],
        job: { script: `echo ${name}; sleep 1` },
      })),
    });
    // Kill it while the second step's job runs.
    await waitFor('step two to run', async () => ((await get(p.id)).steps[1]!.state === 'RUNNING' ? true : undefined), {
      timeoutMs: 60_000,
    });
    await stack.stopWorker('SIGKILL');
    await stack.startWorker();
    const done = await waitForEnd(p.id);
    expect(done.state).toBe('SUCCEEDED');
    expect(done.steps.map((s) => s.state)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    // Each step's job ran once: one job id each, and no job had a second attempt at its script,
    // unless its host was lost (then the job itself says so with attempt 2).
    // Created for it or claimed from the warm pool: a container became the job's.
    const created = watch.stop().filter(isJobContainerCreated);
    for (const name of chain) {
      const jobId = stepJobId(p.id, name);
      const job = (await client.GET('/jobs/{id}', { params: { path: { id: jobId } } })).data!;
      const containers = created.filter((e) => eventJob(e) === jobId).length;
      expect(containers, name).toBe(job.attempt ?? 1);
    }
    const { data: page } = await client.GET('/jobs', { params: { query: { label: [`pipeline:${p.id}`] } } });
    expect(page!.jobs).toHaveLength(chain.length);
  }, 240_000);

  it(`a 50-step wide pipeline at capacity ${CAPACITY}: all SUCCEEDED, capacity never exceeded`, async () => {
    const watch = await watchEvents();
    const p = await submit({
      steps: Array.from({ length: 50 }, (_, i) => ({
        name: `w${i}`,
        job: { script: 'sleep 0.5; echo done', cancelGraceSeconds: 0 },
      })),
    });
    const done = await waitForEnd(p.id, 300_000);
    expect(done.state).toBe('SUCCEEDED');
    expect(done.steps.filter((s) => s.state === 'SUCCEEDED')).toHaveLength(50);
    // The last exit can come a moment after the pipeline's end is seen.
    const mine = (e: ContainerEvent) => eventJob(e)?.startsWith(p.id) === true;
    await waitFor('every container to exit', () =>
      watch.events.filter((e) => e.Action === 'die' && mine(e)).length >= 50 ? true : undefined,
    );
    // Containers holding a slot at once: from create, or a warm pool container's claim, to exit
    // (an idle pool container or an exited one waiting to be removed holds none,
    // activities/host-slots.ts), from Docker's events.
    const events = watch
      .stop()
      .filter((e) => mine(e) && (isJobContainerCreated(e) || e.Action === 'die'))
      .sort((a, b) => a.timeNano - b.timeNano || (a.Action === 'die' ? -1 : 1));
    let alive = 0;
    let most = 0;
    for (const e of events) {
      alive += e.Action === 'die' ? -1 : 1;
      most = Math.max(most, alive);
    }
    expect(events.filter(isJobContainerCreated)).toHaveLength(50);
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(CAPACITY);
  }, 360_000);
});
