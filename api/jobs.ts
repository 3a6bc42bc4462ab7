import { randomUUID } from 'node:crypto';
import { createRoute, z } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import type { Config } from '../domain/config.js';
import { JobSpecSchema } from '../domain/job-spec.js';
import { codecKeys } from '../domain/payload-codec.js';
import { resolveJobInput } from '../domain/resolve-job.js';
import { isTerminal } from '../domain/job-state.js';
import { RUN_JOB_WORKFLOW } from '../domain/workflow-type.js';
import type { runJob } from '../workflows/run-job.js';
import { errorBody, errorResponse, invalidRequest } from './errors.js';
import { jobStartOptions } from './job-start.js';
import { IdempotencyHeaders, idempotentJobId, specFingerprint } from './idempotency.js';
import { JobIdParams, JobViewSchema, type JobView } from './job-view.js';
import { BadCursorError, CursorCodec, listJobs, listJobsRoute } from './jobs-list.js';
import { createRouter, findJob as describeOrNotFound } from './router.js';

export interface JobsDeps {
  client: Client;
  config: Config;
}

const submitJob = createRoute({
  method: 'post',
  path: '/',
  summary: 'Submit a job',
  request: {
    headers: IdempotencyHeaders,
    body: { content: { 'application/json': { schema: JobSpecSchema } }, required: true },
  },
  responses: {
    201: { content: { 'application/json': { schema: JobViewSchema } }, description: 'The job, queued' },
    200: {
      content: { 'application/json': { schema: JobViewSchema } },
      description: 'The job submitted earlier with this Idempotency-Key (header `Idempotent-Replayed: true`)',
    },
    400: errorResponse('Invalid job spec'),
    409: errorResponse('The Idempotency-Key was used for another job spec'),
    413: errorResponse('Body too large'),
  },
});

const getJob = createRoute({
  method: 'get',
  path: '/{id}',
  summary: 'A job and its state',
  request: { params: JobIdParams },
  responses: {
    200: { content: { 'application/json': { schema: JobViewSchema } }, description: 'The job' },
    404: errorResponse('No such job'),
  },
});

const CancelResponseSchema = JobViewSchema.extend({ message: z.string() });
const cancelJob = createRoute({
  method: 'post',
  path: '/{id}/cancel',
  summary: 'Cancel a job: its container is stopped and removed',
  request: { params: JobIdParams },
  responses: {
    202: { content: { 'application/json': { schema: CancelResponseSchema } }, description: 'Cancellation requested' },
    200: {
      content: { 'application/json': { schema: CancelResponseSchema } },
      description: 'The job had already ended',
    },
    404: errorResponse('No such job'),
  },
});

export function jobsApp({ client, config }: JobsDeps) {
  const app = createRouter();
  const cursors = new CursorCodec(codecKeys(config));
  const findJob = (id: string) => describeOrNotFound(client, id);

  app.openapi(submitJob, async (c) => {
    const resolved = resolveJobInput(c.req.valid('json'), config);
    if ('issues' in resolved) return invalidRequest(c, resolved.issues);
    const { input } = resolved;
    const key = c.req.valid('header')['idempotency-key'];
    const id = key ? idempotentJobId(key) : randomUUID();
    // With a key: which request created the job, and what it asked for.
    const submission = key ? { requestId: randomUUID(), fingerprint: specFingerprint(c.req.valid('json')) } : undefined;
    const start = jobStartOptions(input, config, submission ? { submission } : {});
    let handle;
    try {
      handle = await client.workflow.start<typeof runJob>(RUN_JOB_WORKFLOW, {
        workflowId: id,
        ...start,
        // Same key while the job runs: the running one; after it ended: refused, answered below.
        ...(key
          ? { workflowIdConflictPolicy: 'USE_EXISTING' as const, workflowIdReusePolicy: 'REJECT_DUPLICATE' as const }
          : {}),
      });
    } catch (err) {
      if (!(key && err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    if (submission) {
      const description = await client.workflow.getHandle(id).describe();
      const earlier = (description.memo as { submission?: typeof submission } | undefined)?.submission;
      if (earlier?.requestId !== submission.requestId) {
        if (earlier?.fingerprint !== submission.fingerprint) {
          const message = 'this Idempotency-Key was used for another job spec';
          return c.json(errorBody('idempotency_key_reused', message), 409);
        }
        c.header('Location', `/jobs/${id}`);
        c.header('Idempotent-Replayed', 'true');
        return c.json(await findJob(id), 200);
      }
    }
    const job: JobView = {
      id,
      name: input.name,
      state: 'QUEUED',
      image: input.image,
      labels: input.labels,
      createdAt: new Date().toISOString(),
      workflow: { workflowId: id, runId: handle!.firstExecutionRunId, status: 'RUNNING' },
      priority: start.priority!.priorityKey!,
      fairnessKey: input.fairnessKey,
      fairnessWeight: input.fairnessKey !== undefined ? (input.fairnessWeight ?? 1) : undefined,
      startAt: input.startAt,
      ...(start.startDelay !== undefined ? { reason: `starts at ${input.startAt}` } : {}),
    };
    c.header('Location', `/jobs/${id}`);
    return c.json(job, 201);
  });

  app.openapi(listJobsRoute, async (c) => {
    try {
      return c.json(await listJobs(client, config.TEMPORAL_NAMESPACE, cursors, c.req.valid('query')), 200);
    } catch (err) {
      if (err instanceof BadCursorError) return invalidRequest(c, [{ path: 'cursor', message: err.message }]);
      throw err;
    }
  });

  app.openapi(getJob, async (c) => c.json(await findJob(c.req.valid('param').id), 200));

  app.openapi(cancelJob, async (c) => {
    const { id } = c.req.valid('param');
    const job = await findJob(id);
    if (isTerminal(job.state)) {
      return c.json({ ...job, message: `job already ended: ${job.state}` }, 200);
    }
    try {
      await client.workflow.getHandle(id).cancel();
    } catch (err) {
      // It ended between the describe and the cancel.
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    return c.json({ ...job, state: 'CANCELLING' as const, message: 'cancellation requested' }, 202);
  });

  return app;
}
