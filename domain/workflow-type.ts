/**
 * The workflow type that runs one job (workflow id = job id), by name: what the API's list query
 * and describe check, and what `temporal workflow list` shows. Constants only: bundled into the
 * deterministic workflow sandbox.
 */
export const RUN_JOB_WORKFLOW = 'runJob';
