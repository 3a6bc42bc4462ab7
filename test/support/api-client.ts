import Docker from 'dockerode';
import { inject } from 'vitest';
import { LABEL_INSTANCE, LABEL_JOB_ID } from '../../domain/container-labels.js';
import type { JobState } from '../../domain/job-state.js';
import { TERMINAL_STATES } from '../../domain/job-state.js';
import { SpecValidator } from './openapi.js';
import { waitFor } from './wait.js';

export const docker = new Docker();

export interface Job {
  id: string;
  name: string;
  state: JobState;
  labels: Record<string, string>;
  exitCode?: number;
  reason?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  host?: string;
  attempt?: number;
  workflow: { workflowId: string; runId: string; status: string };
}

export function stack() {
  return inject('stack');
}

/** Where an API is and the token it accepts: the shared stack's, or a test's own stack's. */
export interface ApiTarget {
  apiUrl: string;
  apiToken: string;
}

/** The `Authorization` header the shared stack's API accepts. */
export function authHeaders(token = stack().apiToken): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

const validators = new Map<string, Promise<SpecValidator>>();

/** The API's own `/openapi.json`, fetched once per test file and API. */
export function specValidator(target: ApiTarget = stack()): Promise<SpecValidator> {
  let validator = validators.get(target.apiUrl);
  if (!validator) {
    validator = (async () => {
      const res = await fetch(`${target.apiUrl}/openapi.json`, { headers: authHeaders(target.apiToken) });
      return new SpecValidator((await res.json()) as ConstructorParameters<typeof SpecValidator>[0]);
    })();
    validators.set(target.apiUrl, validator);
  }
  return validator;
}

/**
 * A request to the shared stack's API, with its token unless `init.headers` sets `authorization`.
 * Every answer is checked against `/openapi.json` (status, content type, JSON body); a
 * non-conforming one fails the test.
 */
export async function api(path: string, init: RequestInit = {}, target: ApiTarget = stack()): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has('authorization')) headers.set('authorization', `Bearer ${target.apiToken}`);
  const res = await fetch(`${target.apiUrl}${path}`, { ...init, headers });
  const contentType = res.headers.get('content-type');
  // A live stream is checked for its status and type only; its body never ends on its own.
  const body = contentType?.startsWith('text/event-stream') ? '' : await res.clone().text();
  const problems = (await specValidator(target)).check(init.method ?? 'GET', path, res.status, contentType, body);
  if (problems.length > 0) throw new Error(`the answer does not match /openapi.json:\n  ${problems.join('\n  ')}`);
  return res;
}

/** The job routes of one API; `target` is read at each call (the shared stack's is injected per test). */
export function clientFor(target: () => ApiTarget) {
  const call = (path: string, init?: RequestInit) => api(path, init, target());

  async function submit(spec: Record<string, unknown>): Promise<Job> {
    const res = await call('/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(spec),
    });
    if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as Job;
  }

  async function getJob(id: string): Promise<Job> {
    const res = await call(`/jobs/${id}`);
    if (res.status !== 200) throw new Error(`GET /jobs/${id} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as Job;
  }

  async function logs(id: string): Promise<string> {
    const res = await call(`/jobs/${id}/logs`);
    if (res.status !== 200) throw new Error(`GET /jobs/${id}/logs answered ${res.status}`);
    return res.text();
  }

  const cancel = (id: string): Promise<Response> => call(`/jobs/${id}/cancel`, { method: 'POST' });

  function waitForState(id: string, states: JobState[], timeoutMs = 60_000): Promise<Job> {
    return waitFor(
      `job ${id} to reach ${states.join('|')}`,
      async () => {
        const job = await getJob(id);
        if (states.includes(job.state)) return job;
        if (TERMINAL_STATES.includes(job.state)) {
          throw new Error(`job ended ${job.state} (${job.reason ?? ''}), expected ${states.join('|')}`);
        }
        return undefined;
      },
      { timeoutMs },
    );
  }

  const waitForEnd = (id: string, timeoutMs = 60_000) => waitForState(id, [...TERMINAL_STATES], timeoutMs);

  return { submit, getJob, logs, cancel, waitForState, waitForEnd };
}

export const { submit, getJob, logs, cancel, waitForState, waitForEnd } = clientFor(stack);

/** The job's containers on the Docker engine, in any state. */
export async function containersOf(jobId: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({
    all: true,
    filters: { label: [`${LABEL_JOB_ID}=${jobId}`, `${LABEL_INSTANCE}=${stack().instanceId}`] },
  });
}

export async function waitForRunningContainer(jobId: string, timeoutMs = 30_000): Promise<Docker.ContainerInfo> {
  return waitFor(`a running container for job ${jobId}`, async () => {
    const [container] = await containersOf(jobId);
    return container?.State === 'running' ? container : undefined;
  }, { timeoutMs, intervalMs: 20 });
}

export async function waitForNoContainer(jobId: string, timeoutMs = 30_000): Promise<number> {
  const started = Date.now();
  await waitFor(`job ${jobId}'s container to be gone`, async () => ((await containersOf(jobId)).length === 0 ? true : undefined), {
    timeoutMs,
    intervalMs: 20,
  });
  return Date.now() - started;
}
