import { z } from 'zod';
import { CONCURRENCY_KEY, MAX_CONCURRENCY_LIMIT, type Concurrency } from './concurrency.js';
import { ArtifactsSpecSchema, type ArtifactsInput } from './artifacts.js';
import { DEFAULT_PRIORITY, labelsAttribute, PRIORITY_MAX, PRIORITY_MIN } from './job-state.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
// A Docker image reference: [registry[:port]/]name[:tag][@digest], lower-case repository.
const IMAGE_REF = /^[a-z0-9]+(?:[._:/@-][a-zA-Z0-9]+)*$/;

/** Largest request body accepted by `POST /jobs`; well under Temporal's 2 MiB payload limit. */
export const MAX_SUBMIT_BYTES = 1024 * 1024;

const noNul = (value: string) => !value.includes('\0');

/** Temporal's limit on a fairness key. */
export const MAX_FAIRNESS_KEY_BYTES = 64;
/** The range Temporal's matcher uses for fairness weights (it clamps to it). */
export const MIN_FAIRNESS_WEIGHT = 0.001;
export const MAX_FAIRNESS_WEIGHT = 1000;
/** The furthest a `startAt` may lie ahead. */
export const MAX_START_DELAY_DAYS = 366;

const utf8Bytes = (text: string) => new TextEncoder().encode(text).length;

// RFC 3339 date-time: a full date, a time, optional fractions, and `Z` or a numeric offset.
const RFC_3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 time that names a real instant (no 2026-02-30, no 25:00). */
export function isRfc3339(text: string): boolean {
  if (!RFC_3339.test(text)) return false;
  const ms = Date.parse(text.replace(' ', 'T'));
  if (Number.isNaN(ms)) return false;
  // Date.parse rolls 2026-02-30 over to March: the date and time must read back the same.
  const offset = /([+-])(\d{2}):(\d{2})$/.exec(text);
  const offsetMinutes = offset ? (offset[1] === '-' ? -1 : 1) * (Number(offset[2]) * 60 + Number(offset[3])) : 0;
  const local = new Date(ms + offsetMinutes * 60_000).toISOString();
  return local.slice(0, 10) === text.slice(0, 10) && local.slice(11, 19) === text.slice(11, 19);
}

/**
 * What a label value may hold: what Temporal's visibility stores and finds again. Control
 * characters (NUL among them: PostgreSQL cannot store it) and `"` or `\` make the dev server's
 * list query fail or miss the job; an unpaired surrogate (`\p{Cs}` under the `u` flag) is no
 * Unicode text at all.
 */
const LABEL_VALUE_CHARS = /^[^\p{Cc}\p{Cs}"\\]*$/u;
export const LABEL_VALUE_MESSAGE = 'label values must not contain control characters (NUL, tab, newline…), " or \\';
export const labelValueOk = (value: string) => LABEL_VALUE_CHARS.test(value);

/**
 * The largest `HodeiLabels` search attribute Temporal takes: its default size limit of one search
 * attribute value (`frontend.searchAttributesSizeOfValueLimit`, 2 KiB), counted on the JSON the
 * client sends. Over it, starting the workflow fails.
 */
export const MAX_LABELS_ATTRIBUTE_BYTES = 2048;

/** Size of the labels' search attribute as Temporal counts it (its JSON payload's bytes). */
export function labelsAttributeBytes(labels: Record<string, string>): number {
  return new TextEncoder().encode(JSON.stringify(labelsAttribute(labels))).length;
}

/**
 * What a user submits to run a job. The API validates with this schema and the workflow receives
 * the parsed value (with defaults applied), so there is one definition of a valid job.
 */
export const JobSpecSchema = z.strictObject({
  /** The script to run. Starts with `#!` → run with that interpreter; otherwise with bash. */
  script: z.string().min(1, 'script must not be empty'),
  /** A human-readable name. Default: the first line of the script, shortened. */
  name: z.string().min(1).max(200).optional(),
  /** Image to run in. Default: the worker image (`HODEI_WORKER_IMAGE`). */
  image: z.string().max(255).regex(IMAGE_REF, 'image must be a Docker image reference').optional(),
  /** Environment variables for the script. Default: none. */
  env: z
    .record(
      z.string().regex(ENV_NAME, 'env names must match [A-Za-z_][A-Za-z0-9_]*'),
      z.string().refine(noNul, 'env values must not contain NUL'),
    )
    .default({}),
  /**
   * Secret environment variables for the script, delivered like `env` but encrypted in Temporal
   * (payload codec), masked as `***` in the stored output, and never returned by the API.
   * Names must not repeat a name of `env`. Default: none.
   */
  secrets: z
    .record(
      z.string().regex(ENV_NAME, 'secret names must match [A-Za-z_][A-Za-z0-9_]*'),
      z.string().refine(noNul, 'secret values must not contain NUL'),
    )
    .default({})
    .meta({
      description:
        'Secret environment variables: delivered like `env`, encrypted in Temporal, shown as `***` in the stored output, never returned by the API.',
    }),
  /** Seconds the job may run, counted from the run's start on its host (not time queued or provisioning). Default: 3600. */
  timeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 3600)
    .default(3600),
  /** Seconds between SIGTERM and SIGKILL when the job is cancelled or times out. Default: 10. */
  cancelGraceSeconds: z.number().int().min(0).max(300).default(10),
  /** Container limits, each within the operator's maximum. Default: the operator's defaults. */
  resources: z
    .strictObject({
      /** CPU limit in cores (fractions allowed). */
      cpus: z.number().positive().max(256).optional(),
      /** Memory limit in MiB. */
      memoryMb: z.number().int().min(16).optional(),
      /** Maximum number of processes. */
      pidsLimit: z.number().int().min(8).optional(),
      /** Size of the scratch space (/tmp and the working directory, in memory), MiB. */
      scratchMb: z.number().int().min(1).optional(),
    })
    .default({}),
  /** How many times a script that exits non-zero is run again from the start. Default: 0. */
  retries: z.number().int().min(0).max(10).default(0),
  /**
   * How many times the job is run again from the start, on any host, after losing its host
   * (worker and Docker engine gone). Default: `HODEI_INFRA_RETRIES` (2).
   */
  infraRetries: z.number().int().min(0).max(10).optional(),
  /** Free-form labels for finding jobs later. Default: none. */
  labels: z
    .record(
      z.string().regex(LABEL_KEY, 'label keys must match [A-Za-z0-9][A-Za-z0-9._-]{0,62}'),
      z.string().max(256).refine(labelValueOk, LABEL_VALUE_MESSAGE),
    )
    .refine((labels) => Object.keys(labels).length <= 32, 'at most 32 labels')
    .refine(
      (labels) => labelsAttributeBytes(labels) <= MAX_LABELS_ATTRIBUTE_BYTES,
      `labels take more than ${MAX_LABELS_ATTRIBUTE_BYTES} bytes as "key:value" strings in JSON (Temporal's limit of one search attribute)`,
    )
    .default({}),
  // Who runs first (issue 13): carried to Temporal as the job's Priority (api/job-start.ts).
  /** Who runs first: 1 (first) to 5 (last), as Temporal's priority key. Default: 3. */
  priority: z
    .number()
    .int()
    .min(PRIORITY_MIN)
    .max(PRIORITY_MAX)
    .optional()
    .meta({ description: 'Who runs first: 1 (first) to 5 (last). Default: 3.', default: DEFAULT_PRIORITY }),
  /** Fair shares: jobs of different keys (a tenant, a team) take turns for free slots. Default: none. */
  fairnessKey: z
    .string()
    .refine(
      (key) => utf8Bytes(key) >= 1 && utf8Bytes(key) <= MAX_FAIRNESS_KEY_BYTES,
      `fairnessKey must be 1-${MAX_FAIRNESS_KEY_BYTES} bytes of UTF-8`,
    )
    .refine(labelValueOk, 'fairnessKey must not contain control characters, " or \\')
    .optional()
    .meta({ description: 'Fair shares: jobs of different keys take turns for free slots (1-64 bytes).' }),
  /** This job's key's share against other keys' (Temporal's fairness weight). Default: 1. */
  fairnessWeight: z
    .number()
    .min(MIN_FAIRNESS_WEIGHT)
    .max(MAX_FAIRNESS_WEIGHT)
    .optional()
    .meta({
      description: `The fairness key's share against other keys' (${MIN_FAIRNESS_WEIGHT}-${MAX_FAIRNESS_WEIGHT}). Default: 1.`,
      default: 1,
    }),
  /** When the job may start (RFC 3339, with `Z` or an offset); a past time starts it at once. Default: now. */
  startAt: z
    .string()
    .refine(isRfc3339, 'startAt must be an RFC 3339 time with a time zone, e.g. 2026-12-01T10:00:00Z')
    .optional()
    .meta({ description: 'When the job may start (RFC 3339); until then it is QUEUED and holds nothing.' }),
  /**
   * A concurrency key: at most `limit` jobs with this `key` are PROVISIONING or RUNNING at once,
   * on all hosts; the others wait QUEUED (holding no container) and start in submission order.
   * The latest submitted job's `limit` applies to the key. Default: none.
   */
  concurrency: z
    .strictObject({
      key: z.string().regex(CONCURRENCY_KEY, 'concurrency.key must be 1-128 characters of [A-Za-z0-9_.:/-]'),
      limit: z.number().int().min(1).max(MAX_CONCURRENCY_LIMIT),
    })
    .optional()
    .meta({
      description:
        'At most `limit` jobs with this `key` are PROVISIONING or RUNNING at once, on all hosts; the others wait QUEUED, holding no container, and start in submission order. The latest submitted job sets the key’s limit.',
    }),
  /** Files of the working directory kept after the script ends (see docs/artifacts.md). Default: none. */
  artifacts: ArtifactsSpecSchema.optional(),
});

export type JobSpec = z.infer<typeof JobSpecSchema>;

/** A job's container limits, resolved against the operator's defaults and maxima. */
export interface JobResources {
  /** Memory limit in MiB. */
  memoryMb: number;
  /** CPU limit in cores (fractions allowed). */
  cpus: number;
  /** Maximum number of processes. */
  pidsLimit: number;
  /** Size of the in-memory scratch space (/tmp, /var/tmp and the working directory), MiB. */
  scratchMb: number;
}

/** The workflow's input: a validated spec with every default resolved. */
export interface JobInput {
  script: string;
  name: string;
  image: string;
  env: Record<string, string>;
  /** Secret env vars; absent in the input of jobs submitted before secrets existed. */
  secrets?: Record<string, string>;
  timeoutSeconds: number;
  cancelGraceSeconds: number;
  labels: Record<string, string>;
  resources: JobResources;
  /** Runs again after a non-zero exit. */
  retries: number;
  /** Runs again from the start on another host after losing its host. */
  infraRetries: number;
  /** Seconds a host's worker may take to pick up the job's next task before the host counts as lost. */
  hostLossSeconds: number;
  /** Seconds cleanup keeps retrying before the job ends with its container left to the reaper. */
  cleanupDeadlineSeconds: number;
  // Who runs first: absent in the input of jobs submitted before they existed. The workflow
  // start carries them (Temporal Priority, start delay); the workflow itself does not read them.
  /** 1 (first) to 5 (last). */
  priority?: number;
  fairnessKey?: string;
  fairnessWeight?: number;
  /** When the job may start (ISO 8601, UTC). */
  startAt?: string;
  /** The job's concurrency key; absent for jobs without one (and every job from before keys existed). */
  concurrency?: Concurrency;
  /** Files to collect after the script; absent for jobs that declare none (and jobs from before artifacts). */
  artifacts?: ArtifactsInput;
  /**
   * A pipeline step's needs: the jobs of the steps it needs, whose artifacts are placed under
   * `in/<step>/` in its working directory before its script starts. Absent outside pipelines.
   */
  inputs?: JobInputRef[];
  /**
   * The workflow records the job's host in the same search-attribute upsert as its RUNNING state
   * (one command and one visibility write fewer per attempt). Set by every start of a job
   * (`jobStartOptions`); absent for jobs started before, whose histories replay unchanged.
   */
  hostWithState?: true;
  /**
   * A cancel (or the deadline) of the running script is also told to its host (`stopRun`), which
   * stops the container at once rather than at the run's next heartbeat. Set by every start of a
   * job and pipeline step; absent for jobs started before, whose histories replay unchanged.
   */
  hostStops?: true;
}

/** A job whose output a pipeline step receives: the step's name and its job's id. */
export interface JobInputRef {
  step: string;
  jobId: string;
  /**
   * The needed step's job declares artifacts: its manifest must be in the store when this step
   * starts (else the step fails). Without it the step gets an empty `in/<step>/`.
   */
  artifacts?: boolean;
}

/** Default job name: the script's first meaningful line, shortened. */
export function defaultJobName(script: string): string {
  const line =
    script
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '' && !l.startsWith('#')) ?? 'job';
  return line.length > 60 ? `${line.slice(0, 57)}...` : line;
}
