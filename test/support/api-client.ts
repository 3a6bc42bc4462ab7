import Docker from 'dockerode';
import { inject } from 'vitest';
import { LABEL_INSTANCE, LABEL_JOB_ID, LABEL_POOL } from '../../domain/container-labels.js';
import { createApiClient, type JobSpec, type JobView } from '../../api-client/index.js';
import { TERMINAL_STATES, type JobState } from '../../domain/job-state.js';
import { SpecValidator } from './openapi.js';
import { waitFor } from './wait.js';

export const docker = new Docker();

/** A job as the API shows it (the generated client's type). */
export type Job = JobView;

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
  await checkAnswer(init.method ?? 'GET', path, res, target);
  return res;
}

/** Fails when an answer does not match `/openapi.json`. */
async function checkAnswer(method: string, url: string, res: Response, target: ApiTarget): Promise<void> {
  const contentType = res.headers.get('content-type');
  // A live stream is checked for its status and type only; its body never ends on its own.
  const body = contentType?.startsWith('text/event-stream') ? '' : await res.clone().text();
  const problems = (await specValidator(target)).check(method, url, res.status, contentType, body);
  if (problems.length > 0) throw new Error(`the answer does not match /openapi.json:\n  ${problems.join('\n  ')}`);
}

/**
 * The generated client of one API, whose every answer is checked against `/openapi.json`;
 * `onAnswer` sees each answer before the client reads its body.
 */
function checkedClient(target: ApiTarget, onAnswer?: (res: Response) => void) {
  return createApiClient({
    baseUrl: target.apiUrl,
    token: target.apiToken,
    fetch: async (request) => {
      const res = await fetch(request);
      await checkAnswer(request.method, request.url, res, target);
      onAnswer?.(res);
      return onAnswer ? res.clone() : res;
    },
  });
}

/** The job routes of one API; `target` is read at each call (the shared stack's is injected per test). */
export function clientFor(target: () => ApiTarget) {
  const client = () => checkedClient(target());
  const failure = (what: string, res: Response, error: unknown) =>
    new Error(`${what} answered ${res.status}: ${JSON.stringify(error)}`);

  async function submit(spec: JobSpec): Promise<Job> {
    const { data, error, response } = await client().POST('/jobs', { body: spec });
    if (response.status !== 201 || !data) throw failure('submit', response, error);
    return data;
  }

  async function getJob(id: string): Promise<Job> {
    const { data, error, response } = await client().GET('/jobs/{id}', { params: { path: { id } } });
    if (response.status !== 200 || !data) throw failure(`GET /jobs/${id}`, response, error);
    return data;
  }

  async function logs(id: string): Promise<string> {
    const { data, response } = await client().GET('/jobs/{id}/logs', { params: { path: { id } }, parseAs: 'text' });
    if (response.status !== 200 || data === undefined)
      throw new Error(`GET /jobs/${id}/logs answered ${response.status}`);
    return data;
  }

  /** The raw answer (status and body unread), for tests about the cancel route itself. */
  async function cancel(id: string): Promise<Response> {
    let answer: Response | undefined;
    await checkedClient(target(), (res) => (answer = res)).POST('/jobs/{id}/cancel', { params: { path: { id } } });
    return answer!;
  }

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
  return jobContainers(stack().instanceId, jobId);
}

/**
 * A job's containers of an installation, in any state: those created for it (labelled with its
 * id) and warm pool containers it claimed (named `hodei-<job id>-<attempt>`, activities/warm-pool.ts).
 */
export async function jobContainers(instanceId: string, jobId: string): Promise<Docker.ContainerInfo[]> {
  const [labelled, named] = await Promise.all([
    docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_JOB_ID}=${jobId}`, `${LABEL_INSTANCE}=${instanceId}`] },
    }),
    docker.listContainers({
      all: true,
      filters: { name: [`hodei-${jobId}-`], label: [LABEL_POOL, `${LABEL_INSTANCE}=${instanceId}`] },
    }),
  ]);
  const exact = new RegExp(`^/hodei-${jobId.replace(/[.]/g, '\\.')}-\\d+$`);
  return [...labelled, ...named.filter((c) => c.Names.some((n) => exact.test(n)))];
}

export async function waitForRunningContainer(jobId: string, timeoutMs = 30_000): Promise<Docker.ContainerInfo> {
  return waitFor(
    `a running container for job ${jobId}`,
    async () => {
      const [container] = await containersOf(jobId);
      return container?.State === 'running' ? container : undefined;
    },
    { timeoutMs, intervalMs: 20 },
  );
}

export async function waitForNoContainer(jobId: string, timeoutMs = 30_000): Promise<number> {
  const started = Date.now();
  await waitFor(
    `job ${jobId}'s container to be gone`,
    async () => ((await containersOf(jobId)).length === 0 ? true : undefined),
    {
      timeoutMs,
      intervalMs: 20,
    },
  );
  return Date.now() - started;
}

/** What Docker recorded for a job's containers between `since` and `until` (epoch seconds; default: now). */
export async function containerEvents(
  jobId: string,
  since: number,
  until = Math.ceil(Date.now() / 1000) + 1,
): Promise<Array<{ Action: string; timeNano: number }>> {
  // A claimed warm pool container (no job id label) is the one of the job's name, through its rename.
  const claimed = (await jobContainers(stack().instanceId, jobId)).map((c) => c.Id);
  const read = async (filters: Record<string, string[]>) => {
    const events = (await docker.getEvents({
      since,
      until,
      filters: { type: ['container'], ...filters },
    })) as unknown as NodeJS.ReadableStream;
    let text = '';
    for await (const chunk of events) text += String(chunk);
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as { Action: string; timeNano: number });
  };
  const labelled = await read({ label: [`${LABEL_JOB_ID}=${jobId}`] });
  return labelled.length > 0 || claimed.length === 0 ? labelled : read({ container: claimed });
}
