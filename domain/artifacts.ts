/**
 * A job's artifacts: what a spec declares (`artifacts`), which collected paths it keeps, and the
 * manifest the store writes once a collection is complete. Pure; shared by the API, the worker,
 * the CLI and the tests.
 */
import picomatch from 'picomatch';
import { z } from 'zod';

/** Most glob patterns one job may declare. */
export const MAX_ARTIFACT_PATTERNS = 100;
/** Longest artifact path kept (bytes of UTF-8); longer names are left out and reported. */
export const MAX_ARTIFACT_PATH_BYTES = 1024;

/** A problem with a glob, or undefined when it is usable. */
export function globIssue(pattern: string): string | undefined {
  if (pattern.trim() === '') return 'must not be empty';
  if (pattern.includes('\0')) return 'must not contain NUL';
  if (pattern.startsWith('/')) return 'must be relative to the working directory (/work), not absolute';
  if (pattern.split('/').some((part) => part === '..')) return 'must not contain ..';
  return undefined;
}

/** `artifacts` of a job spec. */
export const ArtifactsSpecSchema = z.strictObject({
  /** Globs relative to the working directory (`/work`): `out/**`, `report.xml`, `dist/*.tar.gz`. */
  paths: z
    .array(
      z.string().superRefine((pattern, ctx) => {
        const issue = globIssue(pattern);
        if (issue) ctx.addIssue({ code: 'custom', message: `artifact globs ${issue}` });
      }),
    )
    .min(1, 'at least one glob')
    .max(MAX_ARTIFACT_PATTERNS, `at most ${MAX_ARTIFACT_PATTERNS} globs`),
  /** When the files are kept: `always` (the default), `on_success` (exit 0), `on_failure` (non-zero exit or timeout). */
  when: z.enum(['always', 'on_success', 'on_failure']).default('always'),
  /** Most bytes kept of this job's artifacts. Default and maximum: `HODEI_ARTIFACT_MAX_BYTES`. */
  maxBytes: z.number().int().min(1).optional(),
});
export type ArtifactsSpec = z.infer<typeof ArtifactsSpecSchema>;

/** `artifacts` as the workflow receives it: every default resolved. */
export interface ArtifactsInput {
  paths: string[];
  when: 'always' | 'on_success' | 'on_failure';
  maxBytes: number;
}

/** A matcher for paths relative to /work. Dot files match too: a build's `.coverage` is an output. */
export function artifactMatcher(paths: readonly string[]): (relative: string) => boolean {
  return picomatch([...paths], { dot: true, strictSlashes: true });
}

/**
 * Whether an artifact path (relative, `/`-separated) is a safe name to store and serve: no
 * empty, `.` or `..` segment, no NUL or other control character, not absolute, not too long.
 */
export function safeArtifactPath(relative: string): boolean {
  if (relative === '' || relative.startsWith('/') || relative.endsWith('/')) return false;
  if (Buffer.byteLength(relative) > MAX_ARTIFACT_PATH_BYTES) return false;
  if (/\p{Cc}/u.test(relative) || relative.includes('\\')) return false;
  return relative.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

/** One stored artifact. */
export interface ArtifactEntry {
  /** Path relative to the job's working directory. */
  path: string;
  size: number;
  /** Hex sha256 of the content: also its address in the store. */
  sha256: string;
  /** Permission bits (e.g. 0o644). */
  mode: number;
}

/** What one job's collection kept, written last: until it exists the job has no artifacts. */
export interface ArtifactManifest {
  jobId: string;
  attempt: number;
  artifacts: ArtifactEntry[];
  /** Files were left out: over `maxBytes`, or with names that cannot be served. */
  truncated: boolean;
  collectedAt: string;
}

/** Small facts about a collection, for the job's memo and the workflow's history. */
export interface ArtifactsSummary {
  count: number;
  bytes: number;
  truncated: boolean;
  /** Why nothing was collected, when nothing could be (no tar in the image, …). */
  skipped?: string;
}

/** Resource usage of a job's attempt, from its container's cgroup. */
export interface JobUsage {
  /** CPU time used by every process of the container, seconds. */
  cpuSeconds: number;
  /** Peak memory of the container (cgroup high-water mark), bytes. */
  maxMemoryBytes: number;
  /** Bytes read from block devices, where the engine reports it. */
  blockReadBytes?: number;
  /** Bytes written to block devices, where the engine reports it. */
  blockWriteBytes?: number;
}
