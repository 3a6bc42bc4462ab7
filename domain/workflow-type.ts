/**
 * The workflow type that runs one job (workflow id = job id), by name: what the API's list query
 * and describe check, and what `temporal workflow list` shows. Constants only: bundled into the
 * deterministic workflow sandbox.
 */
export const RUN_JOB_WORKFLOW = 'runJob';

/** The workflow type that runs one pipeline (workflow id = pipeline id); its steps are `runJob` children. */
export const RUN_PIPELINE_WORKFLOW = 'runPipeline';
