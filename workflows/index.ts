export { runJob } from './run-job.js';
export { concurrencyKey } from './concurrency-key.js';
