import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../domain/config.js';
import { PipelineSpecSchema, resolvePipelineInput } from '../../domain/pipeline-spec.js';
import { criticalPath, stepJobId } from '../../domain/pipeline-state.js';

const job = { script: 'echo' };
const issuesOf = (body: unknown) => {
  const result = PipelineSpecSchema.safeParse(body);
  expect(result.success).toBe(false);
  return result.error!.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
};

describe('PipelineSpecSchema', () => {
  it('applies defaults', () => {
    expect(PipelineSpecSchema.parse({ steps: [{ name: 'build', job }] })).toMatchObject({
      labels: {},
      failFast: false,
      steps: [{ name: 'build', needs: [], allowFailure: false, job: { script: 'echo', env: {} } }],
    });
  });

  it.each([
    [{ steps: [] }, 'steps', /at least one step/],
    [{ steps: [{ name: 'Build', job }] }, 'steps.0.name', /\[a-z0-9\]/],
    [{ steps: [{ name: 'a', job: { script: '' } }] }, 'steps.0.job.script', /empty/],
    [{ steps: [{ name: 'a', job: { script: 'x', image: 'UPPER' } }] }, 'steps.0.job.image', /image/],
    [
      {
        steps: [
          { name: 'a', job },
          { name: 'a', job },
        ],
      },
      'steps.1.name',
      /duplicate step name "a"/,
    ],
    [{ steps: [{ name: 'a', needs: ['nope'], job }] }, 'steps.0.needs.0', /unknown step "nope"/],
    [{ steps: [{ name: 'a', needs: ['a'], job }] }, 'steps.0.needs.0', /needs itself/],
    [
      {
        steps: [
          { name: 'a', needs: ['c'], job },
          { name: 'b', needs: ['a'], job },
          { name: 'c', needs: ['b'], job },
        ],
      },
      'steps.0.needs',
      /cycle: a → b → c → a|cycle: a → c → b → a/,
    ],
    [{ steps: Array.from({ length: 101 }, (_, i) => ({ name: `s${i}`, job })) }, 'steps', /at most 100/],
  ])('refuses %#', (body, path, message) => {
    const issues = issuesOf(body);
    expect(issues).toContainEqual({ path, message: expect.stringMatching(message) });
  });

  it('accepts a DAG whose needs name later-declared steps', () => {
    const spec = PipelineSpecSchema.parse({
      steps: [
        { name: 'package', needs: ['test-a', 'test-b'], job },
        { name: 'test-a', needs: ['build'], job },
        { name: 'test-b', needs: ['build'], job },
        { name: 'build', job },
      ],
    });
    expect(spec.steps).toHaveLength(4);
  });
});

describe('resolvePipelineInput', () => {
  const config = loadConfig({ HODEI_ALLOWED_IMAGES: 'hodei-worker:*' });

  it('resolves each step as a job, with pipeline and step labels and its needs as inputs', () => {
    const spec = PipelineSpecSchema.parse({
      name: 'ci',
      steps: [
        { name: 'build', job: { script: 'make', labels: { team: 'x' } } },
        { name: 'test', needs: ['build'], job: { script: 'make test' } },
      ],
    });
    const resolved = resolvePipelineInput(spec, 'p1', config);
    expect('input' in resolved).toBe(true);
    if (!('input' in resolved)) return;
    const [build, test] = resolved.input.steps;
    expect(build!.job).toMatchObject({ name: 'make', labels: { team: 'x', pipeline: 'p1', step: 'build' } });
    expect(build!.job.inputs).toBeUndefined();
    expect(test!.job.inputs).toEqual([{ step: 'build', jobId: stepJobId('p1', 'build') }]);
    expect(test!.job.timeoutSeconds).toBe(3600);
  });

  it('marks the needs whose jobs declare artifacts (their manifest must be there when the step starts)', () => {
    const spec = PipelineSpecSchema.parse({
      steps: [
        { name: 'build', job: { script: 'make', artifacts: { paths: ['out/**'] } } },
        { name: 'lint', job: { script: 'make lint' } },
        { name: 'test', needs: ['build', 'lint'], job: { script: 'make test' } },
      ],
    });
    const resolved = resolvePipelineInput(spec, 'p1', config);
    if (!('input' in resolved)) throw new Error(JSON.stringify(resolved.issues));
    expect(resolved.input.steps[2]!.job.inputs).toEqual([
      { step: 'build', jobId: stepJobId('p1', 'build'), artifacts: true },
      { step: 'lint', jobId: stepJobId('p1', 'lint') },
    ]);
  });

  it("names the step and field of an operator's limit", () => {
    const spec = PipelineSpecSchema.parse({
      steps: [
        { name: 'ok', job },
        { name: 'big', job: { script: 'x', image: 'busybox' } },
      ],
    });
    expect(resolvePipelineInput(spec, 'p1', config)).toEqual({
      issues: [
        { path: 'steps.1.job.image', message: expect.stringMatching(/^step "big": image busybox is not allowed/) },
      ],
    });
  });

  it('counts the pipeline and step labels against the label limit', () => {
    const labels = Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`l${i}`, 'v']));
    const spec = PipelineSpecSchema.parse({ steps: [{ name: 'a', job: { script: 'x', labels } }] });
    expect(resolvePipelineInput(spec, 'p1', config)).toEqual({
      issues: [{ path: 'steps.0.job.labels', message: expect.stringContaining('at most 32 labels') }],
    });
  });
});

describe('criticalPath', () => {
  it('follows the longest chain of needs', () => {
    expect(
      criticalPath([
        { name: 'build', needs: [], durationMs: 100 },
        { name: 'test-a', needs: ['build'], durationMs: 300 },
        { name: 'test-b', needs: ['build'], durationMs: 200 },
        { name: 'package', needs: ['test-a', 'test-b'], durationMs: 50 },
        { name: 'lint', needs: [], durationMs: 400 },
      ]),
    ).toEqual({ steps: ['build', 'test-a', 'package'], durationMs: 450 });
  });

  it('counts steps that never ran as 0', () => {
    expect(criticalPath([{ name: 'a', needs: [] }])).toEqual({ steps: ['a'], durationMs: 0 });
    expect(criticalPath([])).toEqual({ steps: [], durationMs: 0 });
  });
});
