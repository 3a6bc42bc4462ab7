import Docker from 'dockerode';
import { inject } from 'vitest';
import { LABEL_INSTANCE, LABEL_JOB_ID, LABEL_POOL } from '../../domain/container-labels.js';
import { createApiClient, type JobSpec, type JobView } from '../../api-client/index.js';
import { TERMINAL_STATES, type JobState } from '../../domain/job-state.js';
import { claimedJob, isIdlePoolName, isPoolContainer, POOL_NAME_PREFIX } from '../../activities/warm-pool.js';
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
 * id) and warm pool containers it claimed (named `hodei-<job id>-<attempt>`, activities/warm-pool.ts),
 * on `engine` (default: this machine's).
 */
export async function jobContainers(
  instanceId: string,
  jobId: string,
  engine: Docker = docker,
): Promise<Docker.ContainerInfo[]> {
  const [labelled, named] = await Promise.all([
    engine.listContainers({
      all: true,
      filters: { label: [`${LABEL_JOB_ID}=${jobId}`, `${LABEL_INSTANCE}=${instanceId}`] },
    }),
    engine.listContainers({
      all: true,
      filters: { name: [`hodei-${jobId}-`], label: [LABEL_POOL, `${LABEL_INSTANCE}=${instanceId}`] },
    }),
  ]);
  const exact = new RegExp(`^/hodei-${jobId.replace(/[.]/g, '\\.')}-\\d+$`);
  return [...labelled, ...named.filter((c) => c.Names.some((n) => exact.test(n)))];
}

/** Whether a listed container is an idle warm pool container: no job's (yet), it holds no slot. */
export const isIdlePoolContainer = (c: Docker.ContainerInfo): boolean =>
  isPoolContainer(c.Labels) && c.Names.some(isIdlePoolName);

/** An installation's idle warm pool containers (running or not). */
export const idlePoolContainers = (instanceId: string, engine: Docker = docker): Promise<Docker.ContainerInfo[]> =>
  engine.listContainers({
    all: true,
    filters: { name: [POOL_NAME_PREFIX], label: [`${LABEL_INSTANCE}=${instanceId}`, LABEL_POOL] },
  });

/**
 * An installation's job containers on an engine (`docker ps -a`, or the `status` given): those
 * created for a job and claimed pool containers; idle pool containers are left out.
 */
export async function installationJobContainers(
  instanceId: string,
  engine: Docker = docker,
  status?: string[],
): Promise<Docker.ContainerInfo[]> {
  const listed = await engine.listContainers({
    all: true,
    filters: { label: [`${LABEL_INSTANCE}=${instanceId}`], ...(status ? { status } : {}) },
  });
  return listed.filter((c) => !isIdlePoolContainer(c));
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

/** A container event as the engine reports it (`Actor.Attributes`: the labels, `name`: the name now). */
export interface ContainerEvent {
  Action: string;
  id: string;
  time: number;
  timeNano: number;
  Actor: { Attributes: Record<string, string> };
}

/**
 * The job whose container an event is of, as production tells (worker/reaper.ts): its
 * `hodei.job-id` label, or a claimed warm pool container's name `hodei-<job id>-<attempt>` (the
 * engine names the container as it is named at the event). Undefined for an idle pool container.
 */
export function eventJob(e: ContainerEvent): string | undefined {
  const attributes = e.Actor.Attributes;
  if (attributes[LABEL_JOB_ID]) return attributes[LABEL_JOB_ID];
  return attributes[LABEL_POOL] ? claimedJob(attributes.name ?? '')?.jobId : undefined;
}

/** A warm pool container claimed by a job: its rename to the job's name. */
const isClaim = (e: ContainerEvent) => e.Action === 'rename' && Boolean(e.Actor.Attributes[LABEL_POOL]);

/** A container became a job's: created for it, or a pool container claimed (its slot is taken from then). */
export const isJobContainerCreated = (e: ContainerEvent): boolean =>
  (e.Action === 'create' || isClaim(e)) && eventJob(e) !== undefined;

/** A job's container started on its job: a created one's start, or a pool container's claim (already started). */
export const isJobContainerStarted = (e: ContainerEvent): boolean =>
  (e.Action === 'start' || isClaim(e)) && eventJob(e) !== undefined;

/**
 * Watches an installation's container events on an engine live, from `ready` on (Docker's own log
 * keeps only its last 256 events, too few on an engine shared with other tests).
 */
export function watchContainerEvents(
  engine: Docker,
  instanceId: string,
): { ready: Promise<void>; events: ContainerEvent[]; stop(): ContainerEvent[] } {
  const events: ContainerEvent[] = [];
  let stream: (NodeJS.ReadableStream & { destroy(): void }) | undefined;
  let stopped = false;
  const ready = (async () => {
    stream = (await engine.getEvents({
      filters: { type: ['container'], label: [`${LABEL_INSTANCE}=${instanceId}`] },
    })) as unknown as NodeJS.ReadableStream & { destroy(): void };
    if (stopped) stream.destroy();
    let buffered = '';
    stream.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) events.push(JSON.parse(line) as ContainerEvent);
      }
    });
    stream.on('error', () => undefined);
  })();
  return {
    ready,
    events,
    stop: () => {
      stopped = true;
      stream?.destroy();
      return events;
    },
  };
}

/**
 * What Docker recorded for a job's containers between `since` and `until` (epoch seconds; default:
 * now), of the installation `instanceId` (default: the shared stack's): a created container's
 * events from its create, a claimed pool container's from its claim (`rename`) on.
 */
export async function containerEvents(
  jobId: string,
  since: number,
  until = Math.ceil(Date.now() / 1000) + 1,
  instanceId = stack().instanceId,
): Promise<ContainerEvent[]> {
  const events = (await docker.getEvents({
    since,
    until,
    filters: { type: ['container'], label: [`${LABEL_INSTANCE}=${instanceId}`] },
  })) as unknown as NodeJS.ReadableStream;
  let text = '';
  for await (const chunk of events) text += String(chunk);
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as ContainerEvent)
    .filter((e) => eventJob(e) === jobId);
}
