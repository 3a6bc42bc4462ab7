import type { Config } from './config.js';
import { defaultJobName, MAX_START_DELAY_DAYS, type JobInput, type JobResources, type JobSpec } from './job-spec.js';
import { DEFAULT_PRIORITY } from './job-state.js';

export interface SpecIssue {
  path: string;
  message: string;
}

/** Glob match of an image against one allowlist entry (`*` matches any run of characters). */
export function imageAllowed(image: string, allowlist: readonly string[]): boolean {
  return allowlist.some((pattern) => {
    const regex = new RegExp(`^${pattern.split('*').map(escapeRegex).join('.*')}$`);
    return regex.test(image);
  });
}

function escapeRegex(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\/]/g, '\\$&');
}

/** The operator's limits on what a job may ask for. */
export type JobLimits = Pick<
  Config,
  | 'HODEI_ALLOWED_IMAGES'
  | 'HODEI_MAX_CANCEL_GRACE_SECONDS'
  | 'HODEI_MAX_JOB_CPUS'
  | 'HODEI_MAX_JOB_MEMORY_MB'
  | 'HODEI_MAX_JOB_PIDS_LIMIT'
  | 'HODEI_MAX_JOB_SCRATCH_MB'
>;

/** What a job asks of the operator's policy: its image and limits (an absent limit takes the default). */
export interface PolicyRequest {
  image: string;
  resources: Partial<JobResources>;
  cancelGraceSeconds?: number;
}

/**
 * Where a job asks for more than the operator allows (image allowlist, resource and grace
 * maxima). The API checks every spec with it, and the worker again every job it receives.
 */
export function policyIssues(request: PolicyRequest, limits: JobLimits): SpecIssue[] {
  const issues: SpecIssue[] = [];
  if (!imageAllowed(request.image, limits.HODEI_ALLOWED_IMAGES)) {
    issues.push({ path: 'image', message: `image ${request.image} is not allowed (HODEI_ALLOWED_IMAGES)` });
  }
  const atMost = (path: string, value: number | undefined, max: number, setting: string) => {
    if (value !== undefined && value > max) issues.push({ path, message: `must be at most ${max} (${setting})` });
  };
  const { resources } = request;
  atMost(
    'cancelGraceSeconds',
    request.cancelGraceSeconds,
    limits.HODEI_MAX_CANCEL_GRACE_SECONDS,
    'HODEI_MAX_CANCEL_GRACE_SECONDS',
  );
  atMost('resources.cpus', resources.cpus, limits.HODEI_MAX_JOB_CPUS, 'HODEI_MAX_JOB_CPUS');
  atMost('resources.memoryMb', resources.memoryMb, limits.HODEI_MAX_JOB_MEMORY_MB, 'HODEI_MAX_JOB_MEMORY_MB');
  atMost('resources.pidsLimit', resources.pidsLimit, limits.HODEI_MAX_JOB_PIDS_LIMIT, 'HODEI_MAX_JOB_PIDS_LIMIT');
  atMost('resources.scratchMb', resources.scratchMb, limits.HODEI_MAX_JOB_SCRATCH_MB, 'HODEI_MAX_JOB_SCRATCH_MB');
  return issues;
}

/**
 * Turns a valid spec into the workflow's input: defaults from the operator's settings, and the
 * operator's limits (image allowlist, resource maxima, grace maximum) enforced. Returns the
 * issues instead when the spec asks for more than the operator allows.
 */
export function resolveJobInput(spec: JobSpec, config: Config): { input: JobInput } | { issues: SpecIssue[] } {
  const image = spec.image ?? config.HODEI_WORKER_IMAGE;
  const issues = policyIssues(
    { image, resources: spec.resources, cancelGraceSeconds: spec.cancelGraceSeconds },
    config,
  );
  for (const name of Object.keys(spec.secrets)) {
    if (Object.hasOwn(spec.env, name))
      issues.push({ path: `secrets.${name}`, message: `${name} is in env too: a name goes in one of them` });
  }
  issues.push(...schedulingIssues(spec));
  if (spec.artifacts?.maxBytes !== undefined && spec.artifacts.maxBytes > config.HODEI_ARTIFACT_MAX_BYTES) {
    issues.push({
      path: 'artifacts.maxBytes',
      message: `must be at most ${config.HODEI_ARTIFACT_MAX_BYTES} (HODEI_ARTIFACT_MAX_BYTES)`,
    });
  }
  if (issues.length > 0) return { issues };
  return {
    input: {
      script: spec.script,
      name: spec.name ?? defaultJobName(spec.script),
      image,
      env: spec.env,
      secrets: spec.secrets,
      timeoutSeconds: spec.timeoutSeconds,
      cancelGraceSeconds: spec.cancelGraceSeconds,
      labels: spec.labels,
      resources: {
        cpus: spec.resources.cpus ?? Math.min(config.HODEI_JOB_CPUS, config.HODEI_MAX_JOB_CPUS),
        memoryMb: spec.resources.memoryMb ?? Math.min(config.HODEI_JOB_MEMORY_MB, config.HODEI_MAX_JOB_MEMORY_MB),
        pidsLimit: spec.resources.pidsLimit ?? Math.min(config.HODEI_JOB_PIDS_LIMIT, config.HODEI_MAX_JOB_PIDS_LIMIT),
        scratchMb: spec.resources.scratchMb ?? Math.min(config.HODEI_JOB_SCRATCH_MB, config.HODEI_MAX_JOB_SCRATCH_MB),
      },
      retries: spec.retries,
      infraRetries: spec.infraRetries ?? config.HODEI_INFRA_RETRIES,
      hostLossSeconds: config.HODEI_HOST_LOSS_SECONDS,
      cleanupDeadlineSeconds: config.HODEI_CLEANUP_DEADLINE_SECONDS,
      priority: spec.priority ?? DEFAULT_PRIORITY,
      ...(spec.fairnessKey !== undefined ? { fairnessKey: spec.fairnessKey } : {}),
      ...(spec.fairnessWeight !== undefined ? { fairnessWeight: spec.fairnessWeight } : {}),
      ...(spec.startAt !== undefined ? { startAt: new Date(spec.startAt.replace(' ', 'T')).toISOString() } : {}),
      ...(spec.concurrency && { concurrency: spec.concurrency }),
      ...(spec.artifacts && {
        artifacts: {
          paths: spec.artifacts.paths,
          when: spec.artifacts.when,
          maxBytes: spec.artifacts.maxBytes ?? config.HODEI_ARTIFACT_MAX_BYTES,
        },
      }),
    },
  };
}

/** What the schema alone cannot say about who runs first and when. */
function schedulingIssues(spec: Pick<JobSpec, 'fairnessKey' | 'fairnessWeight' | 'startAt'>, now = Date.now()) {
  const issues: SpecIssue[] = [];
  if (spec.fairnessWeight !== undefined && spec.fairnessKey === undefined) {
    issues.push({ path: 'fairnessWeight', message: 'a fairnessWeight needs a fairnessKey' });
  }
  if (spec.startAt !== undefined) {
    const at = Date.parse(spec.startAt.replace(' ', 'T'));
    if (at - now > MAX_START_DELAY_DAYS * 24 * 3600 * 1000) {
      issues.push({ path: 'startAt', message: `startAt must be at most ${MAX_START_DELAY_DAYS} days ahead` });
    }
  }
  return issues;
}
