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

/** Where the job's script lands inside its container. */
export const SCRIPT_DIR = '/hodei';
export const SCRIPT_PATH = '/hodei/script';
