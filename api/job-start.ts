// The one definition lives in the domain module, where the pipeline workflow's sandbox can load it.
export { jobStartOptions } from '../domain/job-start.js';
