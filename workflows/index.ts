export { runJob } from './run-job.js';
