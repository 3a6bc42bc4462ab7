export { runJob } from './run-job.js';
export { concurrencyKey } from './concurrency-key.js';
export { runPipeline } from './run-pipeline.js';
