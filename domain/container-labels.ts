/**
 * What the platform puts on and in a job's container: its Docker labels and where its script
 * lands. Constants only.
 */

/** Docker label keys. The `hodei.` prefix is reserved for the platform. */
export const LABEL_MANAGED = 'hodei.managed';
export const LABEL_JOB_ID = 'hodei.job-id';
export const LABEL_INSTANCE = 'hodei.instance';
export const LABEL_ATTEMPT = 'hodei.attempt';
/** Names (never values) of the container's env vars that are secrets, comma-separated: masked in its output. */
export const LABEL_SECRET_NAMES = 'hodei.secret-names';

/**
 * On a warm pool's containers (never with a job id): the worker process that owns it. An idle one
 * is named `hodei-pool-…`; a claimed one is renamed `hodei-<job id>-<attempt>` (activities/warm-pool.ts).
 */
export const LABEL_POOL = 'hodei.pool';

/** Where the job's script lands inside its container. */
export const SCRIPT_DIR = '/hodei';
export const SCRIPT_PATH = '/hodei/script';
