import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createApiClient, type PipelineSpec, type PipelineView } from '../../api-client/index.js';
import { stepJobId } from '../../domain/pipeline-spec.js';
import { PIPELINE_TERMINAL_STATES } from '../../domain/pipeline-state.js';
import {
  api,
  getJob,
  logs,
  stack,
  waitForEnd,
  waitForNoContainer,
  waitForRunningContainer,
} from '../support/api-client.js';
import { hodei } from '../support/cli.js';
import { TEMPORAL_BIN } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);

const post = (body: unknown, headers: Record<string, string> = {}) =>
  api('/pipelines', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

async function submitPipeline(spec: PipelineSpec): Promise<PipelineView> {
  const res = await post(spec);
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as PipelineView;
}

async function getPipeline(id: string): Promise<PipelineView> {
  const res = await api(`/pipelines/${id}`);
  expect(res.status).toBe(200);
  return (await res.json()) as PipelineView;
}

const waitForPipelineEnd = (id: string, timeoutMs = 90_000) =>
  waitFor(
    `pipeline ${id} to end`,
    async () => {
      const p = await getPipeline(id);
      return PIPELINE_TERMINAL_STATES.includes(p.state) ? p : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );

const states = (p: PipelineView) => Object.fromEntries(p.steps.map((s) => [s.name, s.state]));
const ms = (iso: string | undefined) => Date.parse(iso!);

describe('pipelines: a DAG of steps, each a real job', () => {
  it('diamond: build → test-a ∥ test-b → package, each a labelled job, the tests overlapping', async () => {
    const suite = randomUUID();
    const p = await submitPipeline({
      name: 'diamond',
      labels: { suite },
      steps: [
        { name: 'package', needs: ['test-a', 'test-b'], job: { script: 'echo packaged' } },
        { name: 'build', job: { script: 'echo built' } },
        { name: 'test-a', needs: ['build'], job: { script: 'sleep 2; echo a ok' } },
        { name: 'test-b', needs: ['build'], job: { script: 'sleep 2; echo b ok' } },
      ],
    });
    expect(p).toMatchObject({ name: 'diamond', state: 'QUEUED', labels: { suite } });
    const done = await waitForPipelineEnd(p.id);
    expect(done.state).toBe('SUCCEEDED');
    expect(states(done)).toEqual({
      package: 'SUCCEEDED',
      build: 'SUCCEEDED',
      'test-a': 'SUCCEEDED',
      'test-b': 'SUCCEEDED',
    });

    const jobs = Object.fromEntries(
      await Promise.all(done.steps.map(async (s) => [s.name, await getJob(s.jobId!)] as const)),
    );
    for (const [name, job] of Object.entries(jobs)) {
      expect(job.id).toBe(stepJobId(p.id, name));
      expect(job).toMatchObject({ state: 'SUCCEEDED', labels: { pipeline: p.id, step: name } });
    }
    const [build, a, b, pack] = [jobs.build!, jobs['test-a']!, jobs['test-b']!, jobs.package!];
    expect(ms(a.startedAt)).toBeGreaterThanOrEqual(ms(build.finishedAt));
    expect(ms(b.startedAt)).toBeGreaterThanOrEqual(ms(build.finishedAt));
    // The two tests ran at the same time.
    expect(ms(a.startedAt)).toBeLessThan(ms(b.finishedAt));
    expect(ms(b.startedAt)).toBeLessThan(ms(a.finishedAt));
    expect(ms(pack.startedAt)).toBeGreaterThanOrEqual(Math.max(ms(a.finishedAt), ms(b.finishedAt)));
    expect(await logs(a.id)).toContain('a ok');

    expect(done.criticalPath.steps).toHaveLength(3);
    expect(done.criticalPath.steps[0]).toBe('build');
    expect(done.criticalPath.durationMs).toBeGreaterThanOrEqual(2000);
    for (const s of done.steps) expect(s.durationMs).toBeGreaterThanOrEqual(0);

    // GET /pipelines lists pipelines only; GET /jobs lists the steps' jobs, never the pipeline.
    const listed = (await (await api(`/pipelines?label=suite:${suite}`)).json()) as { pipelines: PipelineView[] };
    expect(listed.pipelines.map((x) => x.id)).toEqual([p.id]);
    const succeeded = (await (await api(`/pipelines?label=suite:${suite}&state=SUCCEEDED`)).json()) as {
      pipelines: PipelineView[];
    };
    expect(succeeded.pipelines).toHaveLength(1);
    const stepJobs = (await (await api(`/jobs?label=pipeline:${p.id}`)).json()) as { jobs: Array<{ id: string }> };
    expect(stepJobs.jobs.map((j) => j.id).sort()).toEqual(done.steps.map((s) => s.jobId).sort());
    expect((await api(`/jobs/${p.id}`)).status).toBe(404);
    expect((await api(`/pipelines/${build.id}`)).status).toBe(404);
  });

  it('failFast: a failed step cancels the running branch (its container gone) and skips the rest', async () => {
    const p = await submitPipeline({
      failFast: true,
      steps: [
        { name: 'slow', job: { script: 'sleep 60', cancelGraceSeconds: 1 } },
        { name: 'after-slow', needs: ['slow'], job: { script: 'echo never' } },
        { name: 'bad', job: { script: 'sleep 1; exit 3' } },
        { name: 'after-bad', needs: ['bad'], job: { script: 'echo never' } },
      ],
    });
    const slow = stepJobId(p.id, 'slow');
    await waitForRunningContainer(slow);
    const done = await waitForPipelineEnd(p.id);
    expect(done.state).toBe('FAILED');
    expect(done.reason).toMatch(/step bad failed: .*exit code 3/);
    expect(states(done)).toEqual({ slow: 'CANCELLED', 'after-slow': 'SKIPPED', bad: 'FAILED', 'after-bad': 'SKIPPED' });
    expect(await waitForNoContainer(slow, 10_000)).toBeGreaterThanOrEqual(0);
    expect((await getJob(slow)).state).toBe('CANCELLED');
  });

  it.each(['the API', '`temporal workflow cancel`'])(
    'cancelled through %s while a step runs: container gone, the rest SKIPPED, then CANCELLED',
    async (how) => {
      const p = await submitPipeline({
        steps: [
          { name: 'long', job: { script: 'while true; do echo tick; sleep 0.2; done', cancelGraceSeconds: 1 } },
          { name: 'side', job: { script: 'echo side' } },
          { name: 'then', needs: ['long'], job: { script: 'echo never' } },
        ],
      });
      const long = stepJobId(p.id, 'long');
      await waitForRunningContainer(long);
      if (how === 'the API') {
        const res = await api(`/pipelines/${p.id}/cancel`, { method: 'POST' });
        expect(res.status).toBe(202);
        expect(await res.json()).toMatchObject({ id: p.id, message: 'cancellation requested' });
      } else {
        const { temporalAddress, namespace } = stack();
        await run(TEMPORAL_BIN, [
          'workflow',
          'cancel',
          '--workflow-id',
          p.id,
          '--address',
          temporalAddress,
          '--namespace',
          namespace,
        ]);
      }
      const done = await waitForPipelineEnd(p.id);
      // The pipeline ends only once its step's container is gone.
      expect(await waitForNoContainer(long, 1)).toBeGreaterThanOrEqual(0);
      expect(done.state).toBe('CANCELLED');
      expect(done.workflow.status).toBe('CANCELLED');
      expect(states(done)).toMatchObject({ long: 'CANCELLED', then: 'SKIPPED' });
      expect(['SUCCEEDED', 'CANCELLED']).toContain(states(done).side);
      expect((await getJob(long)).state).toBe('CANCELLED');
      const again = await api(`/pipelines/${p.id}/cancel`, { method: 'POST' });
      expect(again.status).toBe(200);
    },
  );

  it("cancelling one step's job alone fails that step; allowFailure lets the pipeline go on", async () => {
    const p = await submitPipeline({
      steps: [
        { name: 'victim', allowFailure: true, job: { script: 'sleep 60', cancelGraceSeconds: 0 } },
        { name: 'next', needs: ['victim'], job: { script: 'echo went on' } },
      ],
    });
    const victim = stepJobId(p.id, 'victim');
    await waitForRunningContainer(victim);
    expect((await api(`/jobs/${victim}/cancel`, { method: 'POST' })).status).toBe(202);
    const done = await waitForPipelineEnd(p.id);
    expect(done.state).toBe('SUCCEEDED');
    expect(states(done)).toEqual({ victim: 'FAILED', next: 'SUCCEEDED' });
    expect(done.steps[0]!.reason).toBe('its job was cancelled');
    expect(await logs(stepJobId(p.id, 'next'))).toContain('went on');
  });

  it.each([
    ['empty steps', { steps: [] }, 'steps', /at least one step/],
    [
      'a cycle',
      {
        steps: [
          { name: 'a', needs: ['b'], job: { script: 'x' } },
          { name: 'b', needs: ['a'], job: { script: 'x' } },
        ],
      },
      'steps.0.needs',
      /cycle: a → b → a/,
    ],
    ['an unknown need', { steps: [{ name: 'a', needs: ['zzz'], job: { script: 'x' } }] }, 'steps.0.needs.0', /"zzz"/],
    [
      'a duplicate name',
      {
        steps: [
          { name: 'a', job: { script: 'x' } },
          { name: 'a', job: { script: 'x' } },
        ],
      },
      'steps.1.name',
      /duplicate step name "a"/,
    ],
    [
      'a bad job spec',
      {
        steps: [
          { name: 'ok', job: { script: 'x' } },
          { name: 'broken', job: { script: 'x', timeoutSeconds: -1 } },
        ],
      },
      'steps.1.job.timeoutSeconds',
      /^step "broken": /,
    ],
    [
      'an image the operator does not allow',
      { steps: [{ name: 'img', job: { script: 'x', image: 'busybox' } }] },
      'steps.0.job.image',
      /^step "img": image busybox is not allowed/,
    ],
  ])('%s → 400 naming it', async (_what, body, path, message) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as {
      error: { code: string; issues: Array<{ path: string; message: string }> };
    };
    expect(error.code).toBe('invalid_request');
    expect(error.issues).toContainEqual({ path, message: expect.stringMatching(message) });
  });

  it('Idempotency-Key: the same pipeline again, another spec 409; scopes as for jobs', async () => {
    const key = `pipeline-${randomUUID()}`;
    const spec = { steps: [{ name: 'once', job: { script: 'echo once' } }] };
    const first = await post(spec, { 'idempotency-key': key });
    expect(first.status).toBe(201);
    const again = await post(spec, { 'idempotency-key': key });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const [a, b] = [(await first.json()) as PipelineView, (await again.json()) as PipelineView];
    expect(b.id).toBe(a.id);
    expect((await post({ steps: [{ name: 'other', job: { script: 'x' } }] }, { 'idempotency-key': key })).status).toBe(
      409,
    );
    await waitForPipelineEnd(a.id);

    const { scopedTokens } = stack();
    const as = (token: string) => createApiClient({ baseUrl: stack().apiUrl, token });
    const refused = await as(scopedTokens.read).POST('/pipelines', { body: spec });
    expect(refused.response.status).toBe(403);
    expect(
      (await as(scopedTokens.read).GET('/pipelines/{id}', { params: { path: { id: a.id } } })).response.status,
    ).toBe(200);
    const cancel = await as(scopedTokens.submit).POST('/pipelines/{id}/cancel', { params: { path: { id: a.id } } });
    expect(cancel.response.status).toBe(403);
  });

  it('hodei pipeline run FILE.yaml --follow prints each step prefixed and exits with the outcome', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hodei-pipeline-'));
    const file = path.join(dir, 'p.yaml');
    writeFileSync(
      file,
      [
        'steps:',
        '  - name: hello',
        '    job: { script: "echo hello from step" }',
        '  - name: boom',
        '    needs: [hello]',
        '    job: { script: "echo going down; exit 4" }',
        '  - name: never',
        '    needs: [boom]',
        '    job: { script: "echo never" }',
      ].join('\n'),
    );
    const result = await hodei(['pipeline', 'run', file, '--follow']);
    expect(result.stdout).toContain('hello | hello from step\n');
    expect(result.stdout).toContain('boom | going down\n');
    expect(result.stdout).not.toContain('never |');
    expect(result.stderr).toMatch(/step never SKIPPED/);
    expect(result.stderr).toMatch(/pipeline \S+ FAILED/);
    expect(result.code).toBe(1);

    const id = /pipeline (\S+)\n/.exec(result.stderr)![1]!;
    const shown = await hodei(['pipeline', 'show', id]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/state\s+FAILED/);
    expect(shown.stdout).toMatch(/boom\s+FAILED/);
    const listed = await hodei(['pipeline', 'list', '--state', 'failed', '--json']);
    expect(listed.stdout).toContain(id);
    expect((await getJob(stepJobId(id, 'hello'))).state).toBe('SUCCEEDED');
    await waitForEnd(stepJobId(id, 'boom'));
  });
});
