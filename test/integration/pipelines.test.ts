import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createApiClient, type PipelineSpec, type PipelineView } from '../../api-client/index.js';
import { PIPELINE_TERMINAL_STATES, stepJobId } from '../../domain/pipeline-state.js';
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

async function artifactsOf(
  jobId: string,
): Promise<Array<{ path: string; size: number; sha256: string; mode: number }>> {
  const res = await api(`/jobs/${jobId}/artifacts`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { artifacts: Array<{ path: string; size: number; sha256: string; mode: number }> })
    .artifacts;
}

const states = (p: PipelineView) => Object.fromEntries(p.steps.map((s) => [s.name, s.state]));
const ms = (iso: string | undefined) => Date.parse(iso!);

describe('pipelines: a DAG of steps, each a real job', () => {
  it('diamond: build → test-a ∥ test-b → package, each a labelled job, the tests overlapping, artifacts handed on', async () => {
    const suite = randomUUID();
    // Each test checks what build made (its sha256, a mode kept) and keeps a report of its own.
    const testScript = (x: string) =>
      [
        'set -e',
        `echo "${x} sees: $(ls in)"`,
        `echo "${x} app.bin sha256 $(sha256sum in/build/out/app.bin | cut -d' ' -f1)"`,
        `echo "${x} version $(cat in/build/out/version.txt)"`,
        'in/build/out/run.sh',
        // Long enough that the two overlap even when one's container takes seconds longer to create.
        'sleep 6',
        `mkdir -p report && echo "${x} passed" > report/${x}.txt`,
        `echo ${x} ok`,
      ].join('\n');
    const p = await submitPipeline({
      name: 'diamond',
      labels: { suite },
      steps: [
        {
          name: 'package',
          needs: ['test-a', 'test-b'],
          job: {
            script: [
              'set -e',
              'echo "package sees: $(ls in)"',
              'test ! -e in/build && echo "no in/build"',
              'cat in/test-a/report/test-a.txt in/test-b/report/test-b.txt',
              'echo packaged',
            ].join('\n'),
          },
        },
        {
          name: 'build',
          job: {
            script: [
              'set -e',
              'mkdir -p out',
              'head -c 262144 /dev/urandom > out/app.bin',
              'echo 1.2.3 > out/version.txt',
              "printf '#!/bin/sh\\necho run.sh ran\\n' > out/run.sh && chmod 700 out/run.sh",
              `echo "build app.bin sha256 $(sha256sum out/app.bin | cut -d' ' -f1)"`,
            ].join('\n'),
            artifacts: { paths: ['out/**'] },
          },
        },
        { name: 'test-a', needs: ['build'], job: { script: testScript('test-a'), artifacts: { paths: ['report/*'] } } },
        { name: 'test-b', needs: ['build'], job: { script: testScript('test-b'), artifacts: { paths: ['report/*'] } } },
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
    expect(await logs(a.id)).toContain('test-a ok');

    // Artifacts reached each dependant under in/<step>/, and only those of its direct needs.
    const built = (await logs(build.id)).match(/build app\.bin sha256 ([0-9a-f]{64})/)?.[1];
    expect(built).toBeDefined();
    const buildArtifacts = await artifactsOf(build.id);
    expect(buildArtifacts.map((f) => [f.path, f.size, f.mode])).toEqual([
      ['out/app.bin', 262144, 0o644],
      ['out/run.sh', '#!/bin/sh\necho run.sh ran\n'.length, 0o700],
      ['out/version.txt', 6, 0o644],
    ]);
    expect(buildArtifacts[0]!.sha256).toBe(built);
    for (const x of ['test-a', 'test-b']) {
      const text = await logs(jobs[x]!.id);
      expect(text).toContain(`${x} sees: build`);
      expect(text).toContain(`${x} app.bin sha256 ${built}`);
      expect(text).toContain(`${x} version 1.2.3`);
      expect(text).toContain('run.sh ran');
      expect((await artifactsOf(jobs[x]!.id)).map((f) => f.path)).toEqual([`report/${x}.txt`]);
    }
    const packaged = await logs(pack.id);
    expect(packaged).toContain('package sees: test-a\ntest-b');
    expect(packaged).toContain('no in/build');
    expect(packaged).toContain('test-a passed');
    expect(packaged).toContain('test-b passed');

    expect(done.criticalPath.steps).toHaveLength(3);
    expect(done.criticalPath.steps[0]).toBe('build');
    expect(done.criticalPath.durationMs).toBeGreaterThanOrEqual(2000);
    for (const s of done.steps) expect(s.durationMs).toBeGreaterThanOrEqual(0);

    // GET /pipelines lists pipelines only; GET /jobs lists the steps' jobs, never the pipeline.
    const listed = (await (await api(`/pipelines?label=suite:${suite}`)).json()) as { pipelines: PipelineView[] };
    expect(listed.pipelines.map((x) => x.id)).toEqual([p.id]);
    // Its end state reaches Temporal's visibility store a moment after the pipeline ends.
    const succeeded = await waitFor('the pipeline listed as SUCCEEDED', async () => {
      const page = (await (await api(`/pipelines?label=suite:${suite}&state=SUCCEEDED`)).json()) as {
        pipelines: PipelineView[];
      };
      return page.pipelines.length > 0 ? page.pipelines : undefined;
    });
    expect(succeeded.map((x) => x.id)).toEqual([p.id]);
    const stepJobs = (await (await api(`/jobs?label=pipeline:${p.id}`)).json()) as { jobs: Array<{ id: string }> };
    expect(stepJobs.jobs.map((j) => j.id).sort()).toEqual(done.steps.map((s) => s.jobId).sort());
    expect((await api(`/jobs/${p.id}`)).status).toBe(404);
    expect((await api(`/pipelines/${build.id}`)).status).toBe(404);
  });

  it('a need that declares no artifacts hands on an empty in/<step>/; one whose artifacts the store lacks fails the step', async () => {
    const p = await submitPipeline({
      steps: [
        { name: 'plain', job: { script: 'echo plain' } },
        // Declares artifacts but keeps none (it succeeds): the store holds no manifest of it.
        { name: 'kept-none', job: { script: 'touch x', artifacts: { paths: ['x'], when: 'on_failure' } } },
        {
          name: 'uses-plain',
          needs: ['plain'],
          job: { script: 'test -d in/plain && echo "in/plain: [$(ls -A in/plain)]"' },
        },
        { name: 'uses-none', needs: ['kept-none'], job: { script: 'echo never' } },
      ],
    });
    const done = await waitForPipelineEnd(p.id);
    expect(states(done)).toEqual({
      plain: 'SUCCEEDED',
      'kept-none': 'SUCCEEDED',
      'uses-plain': 'SUCCEEDED',
      'uses-none': 'FAILED',
    });
    expect(await logs(stepJobId(p.id, 'uses-plain'))).toContain('in/plain: []');
    const failed = await getJob(stepJobId(p.id, 'uses-none'));
    expect(failed.reason).toContain(
      `in/kept-none/: the artifact store holds no artifacts of job ${stepJobId(p.id, 'kept-none')}`,
    );
    const text = await logs(failed.id);
    expect(text).toContain('[hodei] step inputs not placed: in/kept-none/');
    expect(text).not.toContain('never');
    expect(await waitForNoContainer(failed.id, 30_000)).toBeGreaterThanOrEqual(0);
  });

  it('failFast: a failed step cancels the running branch (its container gone) and skips the rest', async () => {
    const p = await submitPipeline({
      failFast: true,
      steps: [
        { name: 'slow', job: { script: 'sleep 60', cancelGraceSeconds: 1 } },
        { name: 'after-slow', needs: ['slow'], job: { script: 'echo never' } },
        // Fails after slow's container runs, even when slow's container is created and bad's is warm.
        { name: 'bad', job: { script: 'sleep 10; exit 3' } },
        { name: 'after-bad', needs: ['bad'], job: { script: 'echo never' } },
      ],
    });
    const slow = stepJobId(p.id, 'slow');
    await waitForRunningContainer(slow);
    const done = await waitForPipelineEnd(p.id);
    expect(done.state).toBe('FAILED');
    expect(done.reason).toMatch(/step bad failed: .*exit code 3/);
    expect(states(done)).toEqual({ slow: 'CANCELLED', 'after-slow': 'SKIPPED', bad: 'FAILED', 'after-bad': 'SKIPPED' });
    expect(await waitForNoContainer(slow, 30_000)).toBeGreaterThanOrEqual(0);
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
    // The end state reaches Temporal's visibility store a moment after the pipeline ends.
    const listed = await waitFor('the CLI to list the pipeline as failed', async () => {
      const out = await hodei(['pipeline', 'list', '--state', 'failed', '--json']);
      return out.stdout.includes(id) ? out : undefined;
    });
    expect(listed.code).toBe(0);
    expect((await getJob(stepJobId(id, 'hello'))).state).toBe('SUCCEEDED');
    await waitForEnd(stepJobId(id, 'boom'));
  });
});
