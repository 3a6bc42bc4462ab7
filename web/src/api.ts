/** The JSON API, called with the token the reader entered (kept in sessionStorage, never in a URL). */

import {
  createApiClient,
  errorMessage,
  type ErrorBody,
  type JobPage,
  type JobSpec,
  type JobView,
  type ListQuery,
  type SchedulePage,
  type ScheduleView,
  type PipelinePage,
  type PipelineView,
} from '../../api-client/index.js';

export { JOB_STATES, LISTABLE_STATES, TERMINAL_STATES as TERMINAL, type JobState } from '../../domain/job-state.js';
export type { JobPage };

const TOKEN_KEY = 'hodei.token';

/** A job as `GET /jobs/:id` answers. */
export type Job = JobView;

/** The settings the API puts into the page. */
export interface PageConfig {
  temporalUiUrl?: string;
  namespace?: string;
}

export function pageConfig(): PageConfig {
  try {
    return JSON.parse(
      document.querySelector<HTMLMetaElement>('meta[name="hodei-config"]')?.content ?? '{}',
    ) as PageConfig;
  } catch {
    return {};
  }
}

export const getToken = (): string | null => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (token: string): void => sessionStorage.setItem(TOKEN_KEY, token);
export const clearToken = (): void => sessionStorage.removeItem(TOKEN_KEY);

/** Fired on `window` when the API refuses the token: the page asks for it again. */
export const UNAUTHORIZED_EVENT = 'hodei:unauthorized';

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly issues: { path: string; message: string }[] = [],
  ) {
    super(message);
  }
}

export function authHeaders(): Record<string, string> {
  const token = getToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** A refused token: it is forgotten and the page asks for it again. */
function unauthorized(): ApiError {
  clearToken();
  window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
  return new ApiError(401, 'the API refused the token');
}

/** fetch() with the token; 401 clears it and tells the page. For the text log and the live stream. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(authHeaders())) headers.set(k, v);
  const res = await fetch(path, { ...init, headers, cache: 'no-store' });
  if (res.status === 401) throw unauthorized();
  return res;
}

/** The JSON API on the page's own origin, with the token of this tab. */
const api = createApiClient({ baseUrl: '', token: getToken, init: { cache: 'no-store' } });

/** An answer's data; non-2xx answers become an ApiError carrying the API's message. */
async function data<T>(answer: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await answer;
  if (response.status === 401) throw unauthorized();
  if (!response.ok || data === undefined) {
    throw new ApiError(
      response.status,
      errorMessage(error, `${response.status} ${response.statusText}`),
      (error as Partial<ErrorBody> | undefined)?.error?.issues,
    );
  }
  return data;
}

export const getJob = (id: string) => data(api.GET('/jobs/{id}', { params: { path: { id } } }));

export const cancelJob = (id: string) => data(api.POST('/jobs/{id}/cancel', { params: { path: { id } } }));

export const submitJob = (spec: JobSpec) => data(api.POST('/jobs', { body: spec }));

export const getArtifacts = (id: string) => data(api.GET('/jobs/{id}/artifacts', { params: { path: { id } } }));

export async function listJobs(query: {
  state?: string;
  label?: string;
  limit?: number;
  cursor?: string;
}): Promise<JobPage> {
  const params: ListQuery = {};
  // The page offers only the API's states; an empty field is no filter.
  if (query.state) params.state = query.state as ListQuery['state'];
  if (query.label) params.label = query.label;
  if (query.limit !== undefined) params.limit = query.limit;
  if (query.cursor) params.cursor = query.cursor;
  return data(api.GET('/jobs', { params: { query: params } }));
}

/** A schedule as `GET /schedules/:id` answers. */
export type Schedule = ScheduleView;

export const listSchedules = (cursor?: string): Promise<SchedulePage> =>
  data(api.GET('/schedules', { params: { query: { limit: 100, ...(cursor ? { cursor } : {}) } } }));

export const scheduleAction = (id: string, action: 'pause' | 'unpause' | 'trigger') => {
  const params = { params: { path: { id } } };
  return data(
    action === 'pause'
      ? api.POST('/schedules/{id}/pause', params)
      : action === 'unpause'
        ? api.POST('/schedules/{id}/unpause', params)
        : api.POST('/schedules/{id}/trigger', params),
  );
};
/** A pipeline as `GET /pipelines/:id` answers. */
export type Pipeline = PipelineView;
export { PIPELINE_TERMINAL_STATES } from '../../domain/pipeline-state.js';

export const getPipeline = (id: string) => data(api.GET('/pipelines/{id}', { params: { path: { id } } }));

export const cancelPipeline = (id: string) => data(api.POST('/pipelines/{id}/cancel', { params: { path: { id } } }));

export const listPipelines = (): Promise<PipelinePage> =>
  data(api.GET('/pipelines', { params: { query: { limit: 50 } } }));
