/**
 * Names shared by the API, the workflow and the worker. Constants only: this module is bundled
 * into the deterministic workflow sandbox.
 */

/** Workflow type that runs one job. Workflow id = job id. */
export const RUN_JOB_WORKFLOW = 'runJob';

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

/** Failure types carried by the workflow's ApplicationFailures. */
export const FAILURE_SCRIPT_FAILED = 'ScriptFailed';
export const FAILURE_JOB_TIMED_OUT = 'JobTimedOut';
export const FAILURE_IMAGE_NOT_FOUND = 'ImageNotFound';
export const FAILURE_CONTAINER_LOST = 'ContainerLost';
export const FAILURE_PROVISIONING_FAILED = 'ProvisioningFailed';
/** The job asks for what this host or the operator's policy does not allow: it fails at once. */
export const FAILURE_PROVISIONING_REJECTED = 'ProvisioningRejected';
export const FAILURE_HOST_LOST = 'HostLost';
/** A run attempt could not finish with its Docker engine (it did not answer, or not yet): retried (activities/engine-outage.ts). */
export const FAILURE_ENGINE_UNREACHABLE = 'EngineUnreachable';
/** The log store's disk is full or cannot be written: the job fails (activities/log-store-failure.ts). */
export const FAILURE_LOG_STORE_FAILED = 'LogStoreFailed';

/** Name of the host-specific task queue for a Docker engine, stable across worker restarts. */
export function hostTaskQueue(baseQueue: string, hostId: string): string {
  return `${baseQueue}@${hostId}`;
}
