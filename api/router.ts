import { OpenAPIHono } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import { HTTPException } from 'hono/http-exception';
import { validationError } from './errors.js';
import { describeJob, type DescribeOptions, type JobView } from './job-view.js';

/** A sub-app whose request validation answers a failure as the one 400 error shape. */
export function createRouter() {
  return new OpenAPIHono({
    defaultHook: (result, c) => (result.success ? undefined : validationError(c, result.error)),
  });
}

/** The job `id`, or a 404 in the one error shape when Temporal knows no such job. */
export async function findJob(client: Client, id: string, options?: DescribeOptions): Promise<JobView> {
  const job = await describeJob(client, id, options);
  if (!job) throw new HTTPException(404, { message: `job ${id} not found` });
  return job;
}
