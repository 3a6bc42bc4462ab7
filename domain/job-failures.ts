/**
 * Failure types carried by the workflow's and the activities' ApplicationFailures. Constants
 * only: this module is bundled into the deterministic workflow sandbox.
 */
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
