/**
 * What a user submits to run a pipeline: a DAG of named steps, each an ordinary job spec. The API
 * validates with this schema and resolves every step's job exactly as `POST /jobs` does, so a
 * step is a job like any other; the workflow (`runPipeline`) receives the resolved input.
 */
import { z } from 'zod';
import type { Config } from './config.js';
import { JobSpecSchema, type JobInput } from './job-spec.js';
import { resolveJobInput, type SpecIssue } from './resolve-job.js';
import { stepJobId } from './pipeline-state.js';

/** Step names: lower-case, usable as a path segment (`in/<step>/`) and in a job id. */
export const STEP_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const MAX_PIPELINE_STEPS = 100;

/** The labels every step's job carries, naming its pipeline and its step. */
export const PIPELINE_LABEL = 'pipeline';
export const STEP_LABEL = 'step';

export const PipelineStepSchema = z.strictObject({
  /** Unique within the pipeline; `[a-z0-9][a-z0-9_-]{0,62}`. */
  name: z.string().regex(STEP_NAME, 'step names must match [a-z0-9][a-z0-9_-]{0,62}'),
  /** Steps that must succeed (or fail with `allowFailure`) before this one starts. Default: none. */
  needs: z.array(z.string()).max(MAX_PIPELINE_STEPS).default([]),
  /** The step's job: the same spec as `POST /jobs`. */
  job: JobSpecSchema,
  /** A failure of this step does not fail the pipeline, and its dependants still run. Default: false. */
  allowFailure: z.boolean().default(false),
});

export const PipelineSpecSchema = z
  .strictObject({
    /** A human-readable name. Default: the step names, joined. */
    name: z.string().min(1).max(200).optional(),
    /** Labels of the pipeline itself, for finding it (`GET /pipelines?label=`). Default: none. */
    labels: JobSpecSchema.shape.labels,
    /** On the first failed step, cancel the running steps and skip the rest. Default: false. */
    failFast: z.boolean().default(false),
    steps: z
      .array(PipelineStepSchema)
      .min(1, 'a pipeline needs at least one step')
      .max(MAX_PIPELINE_STEPS, `at most ${MAX_PIPELINE_STEPS} steps`),
  })
  .superRefine((spec, ctx) => {
    for (const issue of graphIssues(spec.steps)) ctx.addIssue({ code: 'custom', ...issue });
  });

export type PipelineSpec = z.infer<typeof PipelineSpecSchema>;

type StepGraph = ReadonlyArray<{ name: string; needs: readonly string[] }>;

/** Duplicate names, unknown or repeated needs, and cycles, each at the step it concerns. */
export function graphIssues(steps: StepGraph): Array<{ path: Array<string | number>; message: string }> {
  const issues: Array<{ path: Array<string | number>; message: string }> = [];
  const index = new Map<string, number>();
  steps.forEach((step, i) => {
    if (index.has(step.name)) {
      issues.push({ path: ['steps', i, 'name'], message: `duplicate step name "${step.name}"` });
    } else index.set(step.name, i);
  });
  steps.forEach((step, i) => {
    step.needs.forEach((need, j) => {
      if (!index.has(need)) {
        issues.push({ path: ['steps', i, 'needs', j], message: `step "${step.name}" needs unknown step "${need}"` });
      } else if (need === step.name) {
        issues.push({ path: ['steps', i, 'needs', j], message: `step "${step.name}" needs itself` });
      } else if (step.needs.indexOf(need) !== j) {
        issues.push({ path: ['steps', i, 'needs', j], message: `step "${step.name}" needs "${need}" twice` });
      }
    });
  });
  if (issues.length > 0) return issues;
  const cycle = findCycle(steps);
  if (cycle) {
    issues.push({ path: ['steps', index.get(cycle[0]!)!, 'needs'], message: `cycle: ${cycle.join(' → ')}` });
  }
  return issues;
}

/** A cycle of needs as step names (first repeated at the end), or undefined for a DAG. */
function findCycle(steps: StepGraph): string[] | undefined {
  const needs = new Map(steps.map((s) => [s.name, s.needs]));
  const mark = new Map<string, 'visiting' | 'done'>();
  const trail: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (mark.get(name) === 'done') return undefined;
    if (mark.get(name) === 'visiting') return [...trail.slice(trail.indexOf(name)), name];
    mark.set(name, 'visiting');
    trail.push(name);
    for (const need of needs.get(name) ?? []) {
      const cycle = visit(need);
      if (cycle) return cycle;
    }
    trail.pop();
    mark.set(name, 'done');
    return undefined;
  };
  for (const step of steps) {
    const cycle = visit(step.name);
    if (cycle) return cycle.reverse();
  }
  return undefined;
}

/** One resolved step: the child job's full input, labels and `inputs` included. */
export interface PipelineStepInput {
  name: string;
  needs: string[];
  allowFailure: boolean;
  job: JobInput;
}

/** The `runPipeline` workflow's input. */
export interface PipelineInput {
  name: string;
  labels: Record<string, string>;
  failFast: boolean;
  steps: PipelineStepInput[];
}

/** Default pipeline name: its step names, shortened. */
export function defaultPipelineName(steps: ReadonlyArray<{ name: string }>): string {
  const names = steps.map((s) => s.name).join(', ');
  return names.length > 60 ? `${names.slice(0, 57)}...` : names;
}

/**
 * Resolves every step's job as `POST /jobs` resolves a job (defaults, the operator's limits), with
 * the labels `pipeline: <id>` and `step: <name>` added, and the jobs of its needs as `inputs`.
 * Issues are named by path in the body (`steps.2.job.image`) with the step's name in the message.
 */
export function resolvePipelineInput(
  spec: PipelineSpec,
  pipelineId: string,
  config: Config,
): { input: PipelineInput } | { issues: SpecIssue[] } {
  const issues: SpecIssue[] = [];
  const steps: PipelineStepInput[] = [];
  const declaresArtifacts = new Set(spec.steps.filter((s) => s.job.artifacts !== undefined).map((s) => s.name));
  spec.steps.forEach((step, i) => {
    const at = (path: string, message: string) =>
      issues.push({ path: `steps.${i}.job.${path}`, message: `step "${step.name}": ${message}` });
    const labels = JobSpecSchema.shape.labels.safeParse({
      ...step.job.labels,
      [PIPELINE_LABEL]: pipelineId,
      [STEP_LABEL]: step.name,
    });
    if (!labels.success) {
      for (const issue of labels.error.issues) at('labels', `${issue.message} (with the labels pipeline and step)`);
      return;
    }
    // A step starts when its needs are done; a start time of its own has no meaning there.
    if (step.job.startAt !== undefined) {
      at('startAt', 'a step starts when the steps it needs are done; startAt is for single jobs');
      return;
    }
    const resolved = resolveJobInput({ ...step.job, labels: labels.data }, config);
    if ('issues' in resolved) {
      for (const issue of resolved.issues) at(issue.path, issue.message);
      return;
    }
    // A step is a job: started as every job is (`jobStartOptions` sets the same).
    const job: JobInput = { ...resolved.input, hostWithState: true, hostStops: true };
    // The jobs whose artifacts go under in/<step>/ (activities/step-inputs.ts).
    if (step.needs.length > 0)
      job.inputs = step.needs.map((need) => ({
        step: need,
        jobId: stepJobId(pipelineId, need),
        ...(declaresArtifacts.has(need) && { artifacts: true }),
      }));
    steps.push({ name: step.name, needs: step.needs, allowFailure: step.allowFailure, job });
  });
  if (issues.length > 0) return { issues };
  return {
    input: { name: spec.name ?? defaultPipelineName(spec.steps), labels: spec.labels, failFast: spec.failFast, steps },
  };
}
