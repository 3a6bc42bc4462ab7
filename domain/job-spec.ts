import { z } from 'zod';
import { ArtifactsSpecSchema, type ArtifactsInput } from './artifacts.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
// A Docker image reference: [registry[:port]/]name[:tag][@digest], lower-case repository.
const IMAGE_REF = /^[a-z0-9]+(?:[._:/@-][a-zA-Z0-9]+)*$/;

/** Largest request body accepted by `POST /jobs`; well under Temporal's 2 MiB payload limit. */
export const MAX_SUBMIT_BYTES = 1024 * 1024;

const noNul = (value: string) => !value.includes('\0');

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

/** The job's labels as its `HodeiLabels` search attribute: `key:value` each. */
export function labelsAttribute(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}:${v}`);
}

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
  /** Seconds the script may run, counted from its start. Default: 3600. */
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
  /** Files to collect after the script; absent for jobs that declare none (and jobs from before artifacts). */
  artifacts?: ArtifactsInput;
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
