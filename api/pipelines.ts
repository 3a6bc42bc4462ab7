import { randomUUID } from 'node:crypto';
import { createRoute, z } from '@hono/zod-openapi';
import type { Client, WorkflowExecutionDescription } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import type { Config } from '../domain/config.js';
import { labelsAttribute, LABELS_KEY, stateAttribute } from '../domain/job-state.js';
import { codecKeys } from '../domain/payload-codec.js';
import { PipelineSpecSchema, resolvePipelineInput, type PipelineInput } from '../domain/pipeline-spec.js';
import {
  criticalPath,
  derivePipelineState,
  PIPELINE_STATE_QUERIES,
  PIPELINE_STATES,
  PIPELINE_TERMINAL_STATES,
  STEP_STATES,
  stepJobId,
  stepMemoKey,
  type PipelineMemo,
  type StepMemo,
} from '../domain/pipeline-state.js';
import { RUN_PIPELINE_WORKFLOW } from '../domain/workflow-type.js';
import type { runPipeline } from '../workflows/run-pipeline.js';
import { errorBody, errorResponse, invalidRequest, validationError } from './errors.js';
import { IdempotencyHeaders, idempotentJobId, specFingerprint } from './idempotency.js';
import { BadCursorError, CursorCodec, listExecutions, listQuery, ListQuerySchema } from './jobs-list.js';
import { JobIdParams } from './job-view.js';
import { createRouter } from './router.js';

const PipelineStepViewSchema = z.object({
  name: z.string(),
  needs: z.array(z.string()),
  allowFailure: z.boolean(),
  state: z.enum(STEP_STATES),
  /** The step's job (`GET /jobs/{jobId}`), once it was started. */
  jobId: z.string().optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  durationMs: z.number().int().optional(),
  reason: z.string().optional(),
});

/** A pipeline as the API shows it. */
export const PipelineViewSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    state: z.enum(PIPELINE_STATES),
    labels: z.record(z.string(), z.string()),
    failFast: z.boolean(),
    reason: z.string().optional(),
    createdAt: z.string(),
    startedAt: z.string().optional(),
    finishedAt: z.string().optional(),
    durationMs: z.number().int().optional(),
    steps: z.array(PipelineStepViewSchema),
    criticalPath: z
      .object({ steps: z.array(z.string()), durationMs: z.number().int() })
      .openapi({ description: 'The chain of needs with the longest total step duration (steps that ran).' }),
    workflow: z.object({ workflowId: z.string(), runId: z.string(), status: z.string() }),
  })
  .openapi('PipelineView');
export type PipelineView = z.infer<typeof PipelineViewSchema>;

const PipelineListQuerySchema = ListQuerySchema.extend({
  state: z.enum(PIPELINE_STATES).optional().openapi({ description: 'Only pipelines in this state.' }),
});

const submitPipeline = createRoute({
  method: 'post',
  path: '/',
  summary: 'Submit a pipeline: a DAG of steps, each a job',
  request: {
    headers: IdempotencyHeaders,
    body: { content: { 'application/json': { schema: PipelineSpecSchema } }, required: true },
  },
  responses: {
    201: { content: { 'application/json': { schema: PipelineViewSchema } }, description: 'The pipeline, queued' },
    200: {
      content: { 'application/json': { schema: PipelineViewSchema } },
      description: 'The pipeline submitted earlier with this Idempotency-Key (header `Idempotent-Replayed: true`)',
    },
    400: errorResponse('Invalid pipeline: names the step and field'),
    409: errorResponse('The Idempotency-Key was used for another pipeline spec'),
    413: errorResponse('Body too large'),
  },
});

const listPipelines = createRoute({
  method: 'get',
  path: '/',
  summary: 'Pipelines, newest first, filtered by state and labels',
  request: { query: PipelineListQuerySchema },
  responses: {
    200: {
      content: {
        'application/json': {
          schema: z.object({
            pipelines: z.array(PipelineViewSchema),
            nextCursor: z.string().optional().openapi({ description: 'Absent on the last page.' }),
          }),
        },
      },
      description: 'A page of pipelines',
    },
    400: errorResponse('Bad filter or cursor'),
  },
});

const getPipeline = createRoute({
  method: 'get',
  path: '/{id}',
  summary: 'A pipeline, its steps and their jobs',
  request: { params: JobIdParams },
  responses: {
    200: { content: { 'application/json': { schema: PipelineViewSchema } }, description: 'The pipeline' },
    404: errorResponse('No such pipeline'),
  },
});

const CancelPipelineSchema = PipelineViewSchema.extend({ message: z.string() });
const cancelPipeline = createRoute({
  method: 'post',
  path: '/{id}/cancel',
  summary: "Cancel a pipeline: its running steps' jobs are cancelled, the pending ones skipped",
  request: { params: JobIdParams },
  responses: {
    202: { content: { 'application/json': { schema: CancelPipelineSchema } }, description: 'Cancellation requested' },
    200: {
      content: { 'application/json': { schema: CancelPipelineSchema } },
      description: 'The pipeline had already ended',
    },
    404: errorResponse('No such pipeline'),
  },
});

/** The memo a pipeline's workflow starts with: its steps as defined, QUEUED. */
export function initialPipelineMemo(input: PipelineInput, pipelineId: string): PipelineMemo {
  return {
    kind: 'pipeline',
    name: input.name,
    labels: input.labels,
    failFast: input.failFast,
    state: 'QUEUED',
    steps: input.steps.map((s) => ({
      name: s.name,
      needs: s.needs,
      allowFailure: s.allowFailure,
      jobId: stepJobId(pipelineId, s.name),
    })),
  };
}

const msBetween = (from?: string, to?: string) =>
  from && to ? Math.max(0, Date.parse(to) - Date.parse(from)) : undefined;

/** A pipeline from its workflow's describe (or a visibility listing): status and memo. */
export function toPipelineView(d: WorkflowExecutionDescription): PipelineView {
  const memo = (d.memo ?? {}) as Partial<PipelineMemo> & Record<string, unknown>;
  const { state, reason } = derivePipelineState({ status: d.status.name }, memo);
  const steps = (memo.steps ?? []).map((def) => {
    const progress = (memo[stepMemoKey(def.name)] as StepMemo | undefined) ?? { state: 'QUEUED' as const };
    const ran = progress.state !== 'QUEUED' && progress.state !== 'SKIPPED';
    return {
      name: def.name,
      needs: def.needs,
      allowFailure: def.allowFailure,
      state: progress.state,
      jobId: ran ? def.jobId : undefined,
      startedAt: progress.startedAt,
      finishedAt: progress.finishedAt,
      durationMs: msBetween(progress.startedAt, progress.finishedAt),
      reason: progress.reason,
    };
  });
  const finishedAt = memo.finishedAt ?? d.closeTime?.toISOString();
  return {
    id: d.workflowId,
    name: memo.name ?? d.workflowId,
    state,
    labels: memo.labels ?? {},
    failFast: memo.failFast ?? false,
    reason: reason ?? memo.reason,
    createdAt: d.startTime.toISOString(),
    startedAt: memo.startedAt,
    finishedAt,
    durationMs: msBetween(d.startTime.toISOString(), finishedAt),
    steps,
    criticalPath: criticalPath(steps),
    workflow: { workflowId: d.workflowId, runId: d.runId, status: d.status.name },
  };
}

export interface PipelinesDeps {
  client: Client;
  config: Config;
}

export function pipelinesApp({ client, config }: PipelinesDeps) {
  const app = createRouter();
  const cursors = new CursorCodec(codecKeys(config));

  async function findPipeline(id: string): Promise<PipelineView> {
    let description: WorkflowExecutionDescription | undefined;
    try {
      description = await client.workflow.getHandle(id).describe();
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    if (description?.type !== RUN_PIPELINE_WORKFLOW) {
      const message = `pipeline ${id} not found`;
      throw Object.assign(new Error(message), { notFound: true });
    }
    return toPipelineView(description);
  }
  const notFound = (err: unknown) => (err as { notFound?: boolean }).notFound === true;

  app.openapi(
    submitPipeline,
    async (c) => {
      const spec = c.req.valid('json');
      const key = c.req.valid('header')['idempotency-key'];
      const id = key ? idempotentJobId(key, 'hodei-pipeline-idempotency-key') : randomUUID();
      const resolved = resolvePipelineInput(spec, id, config);
      if ('issues' in resolved) return invalidRequest(c, resolved.issues);
      const { input } = resolved;
      const submission = key ? { requestId: randomUUID(), fingerprint: specFingerprint(spec) } : undefined;
      const memo = initialPipelineMemo(input, id);
      let handle;
      try {
        handle = await client.workflow.start<typeof runPipeline>(RUN_PIPELINE_WORKFLOW, {
          workflowId: id,
          taskQueue: config.HODEI_TASK_QUEUE,
          args: [input],
          memo: { ...memo, ...(submission ? { submission } : {}) },
          typedSearchAttributes: new TypedSearchAttributes([
            stateAttribute('QUEUED'),
            { key: LABELS_KEY, value: labelsAttribute(input.labels) },
          ]),
          ...(key
            ? { workflowIdConflictPolicy: 'USE_EXISTING' as const, workflowIdReusePolicy: 'REJECT_DUPLICATE' as const }
            : {}),
        });
      } catch (err) {
        if (!(key && err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
      c.header('Location', `/pipelines/${id}`);
      if (submission) {
        const existing = await client.workflow.getHandle(id).describe();
        const earlier = (existing.memo as { submission?: typeof submission } | undefined)?.submission;
        if (earlier?.requestId !== submission.requestId) {
          if (earlier?.fingerprint !== submission.fingerprint) {
            const message = 'this Idempotency-Key was used for another pipeline spec';
            return c.json(errorBody('idempotency_key_reused', message), 409);
          }
          c.header('Idempotent-Replayed', 'true');
          return c.json(toPipelineView(existing), 200);
        }
      }
      const createdAt = new Date().toISOString();
      const view: PipelineView = {
        id,
        name: input.name,
        state: 'QUEUED',
        labels: input.labels,
        failFast: input.failFast,
        createdAt,
        steps: memo.steps.map((s) => ({ name: s.name, needs: s.needs, allowFailure: s.allowFailure, state: 'QUEUED' })),
        criticalPath: { steps: [], durationMs: 0 },
        workflow: { workflowId: id, runId: handle!.firstExecutionRunId, status: 'RUNNING' },
      };
      return c.json(view, 201);
    },
    // A bad body names the step, not only its index.
    (result, c) => {
      if (result.success) return undefined;
      if (result.target !== 'json') return validationError(c, result.error);
      const { issues } = result.error;
      return c.req
        .json()
        .catch(() => undefined)
        .then((body: unknown) => invalidRequest(c, namedIssues(issues, body)));
    },
  );

  app.openapi(listPipelines, async (c) => {
    const q = c.req.valid('query');
    try {
      const query = listQuery(q, RUN_PIPELINE_WORKFLOW, PIPELINE_STATE_QUERIES);
      const { executions, nextCursor } = await listExecutions(client, config.TEMPORAL_NAMESPACE, cursors, query, q);
      return c.json({ pipelines: executions.map(toPipelineView), nextCursor }, 200);
    } catch (err) {
      if (err instanceof BadCursorError) return invalidRequest(c, [{ path: 'cursor', message: err.message }]);
      throw err;
    }
  });

  app.openapi(getPipeline, async (c) => {
    const { id } = c.req.valid('param');
    try {
      return c.json(await findPipeline(id), 200);
    } catch (err) {
      if (notFound(err)) return c.json(errorBody('not_found', `pipeline ${id} not found`), 404);
      throw err;
    }
  });

  app.openapi(cancelPipeline, async (c) => {
    const { id } = c.req.valid('param');
    let pipeline: PipelineView;
    try {
      pipeline = await findPipeline(id);
    } catch (err) {
      if (notFound(err)) return c.json(errorBody('not_found', `pipeline ${id} not found`), 404);
      throw err;
    }
    if (PIPELINE_TERMINAL_STATES.includes(pipeline.state)) {
      return c.json({ ...pipeline, message: `pipeline already ended: ${pipeline.state}` }, 200);
    }
    try {
      await client.workflow.getHandle(id).cancel();
    } catch (err) {
      // It ended between the describe and the cancel.
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    return c.json({ ...pipeline, message: 'cancellation requested' }, 202);
  });

  return app;
}

/** Validation issues with the step's name in the message where the body names it (`steps.2.job.image`). */
function namedIssues(issues: ReadonlyArray<z.core.$ZodIssue>, body: unknown) {
  const steps = (body as { steps?: unknown } | null)?.steps;
  return issues.map((issue) => {
    const path = issue.path.map(String).join('.') || '(body)';
    const [first, index] = issue.path;
    const name =
      first === 'steps' && typeof index === 'number' && Array.isArray(steps)
        ? (steps[index] as { name?: unknown } | undefined)?.name
        : undefined;
    const named = typeof name === 'string' && !issue.message.includes(`"${name}"`);
    return { path, message: named ? `step "${name}": ${issue.message}` : issue.message };
  });
}
