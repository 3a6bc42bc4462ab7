export { runJob } from './run-job.js';
export { runPipeline } from './run-pipeline.js';
