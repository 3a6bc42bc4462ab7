import { ApplicationFailure } from '@temporalio/activity';
import { z } from 'zod';
import { JobSpecSchema, type JobResources } from '../domain/job-spec.js';
import { FAILURE_PROVISIONING_REJECTED } from '../domain/job-failures.js';
import { policyIssues, type JobLimits, type SpecIssue } from '../domain/resolve-job.js';

/**
 * What the worker receives of a job, as the API would have made it: the spec's own rules (one
 * schema, the job spec's), and every limit resolved to a number.
 */
const ProvisionRequestSchema = z.object({
  script: JobSpecSchema.shape.script,
  image: JobSpecSchema.shape.image.unwrap(),
  env: JobSpecSchema.shape.env.unwrap(),
  secrets: JobSpecSchema.shape.secrets,
  resources: JobSpecSchema.shape.resources.unwrap().required(),
});

export interface ProvisionRequest {
  image: string;
  script: string;
  env: Record<string, string>;
  secrets?: Record<string, string>;
  resources: JobResources;
}

/**
 * Where a job the worker received breaks the job spec's rules or the operator's policy. A
 * workflow started on Temporal directly never went through the API: the worker checks again,
 * with the API's own checks, before it creates anything.
 */
export function provisionIssues(request: ProvisionRequest, limits: JobLimits): SpecIssue[] {
  const parsed = ProvisionRequestSchema.safeParse(request);
  if (!parsed.success)
    return parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
  return policyIssues({ image: parsed.data.image, resources: parsed.data.resources }, limits);
}

/** A job this worker will not run: the attempt fails at once, naming why. */
export function provisioningRejected(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FAILURE_PROVISIONING_REJECTED, message, nonRetryable: true });
}

/**
 * The grace period a stop gives the script: what the job asks, within the operator's maximum
 * (a workflow started on Temporal directly could ask for any number; Docker waits forever for -1).
 */
export function graceSeconds(requested: number, limits: Pick<JobLimits, 'HODEI_MAX_CANCEL_GRACE_SECONDS'>): number {
  const max = limits.HODEI_MAX_CANCEL_GRACE_SECONDS;
  return Number.isFinite(requested) && requested >= 0 ? Math.min(Math.floor(requested), max) : max;
}
