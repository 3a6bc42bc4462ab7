/** The JSON API, called with the token the reader entered (kept in sessionStorage, never in a URL). */

const TOKEN_KEY = 'hodei.token';

export const JOB_STATES = ['QUEUED', 'PROVISIONING', 'RUNNING', 'CANCELLING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL: readonly JobState[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

/** A job as `GET /jobs/:id` answers. */
export interface Job {
  id: string;
  name: string;
  state: JobState;
  image?: string;
  labels: Record<string, string>;
  exitCode?: number;
  reason?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  host?: string;
  attempt?: number;
  cleanupPending?: boolean;
  workflow: { workflowId: string; runId: string; status: string };
}

/** One page of `GET /jobs`. */
export interface JobPage {
  jobs: Job[];
  nextCursor?: string;
}

/** The settings the API puts into the page. */
export interface PageConfig {
  temporalUiUrl?: string;
  namespace?: string;
}

export function pageConfig(): PageConfig {
  try {
    return JSON.parse(document.querySelector<HTMLMetaElement>('meta[name="hodei-config"]')?.content ?? '{}') as PageConfig;
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

/** fetch() with the token; 401 clears it and tells the page. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(authHeaders())) headers.set(k, v);
  const res = await fetch(path, { ...init, headers, cache: 'no-store' });
  if (res.status === 401) {
    clearToken();
    window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
    throw new ApiError(401, 'the API refused the token');
  }
  return res;
}

/** A JSON call; non-2xx answers become an ApiError carrying the API's message. */
export async function apiJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await request(path, init);
  const body: unknown = await res.json().catch(() => undefined);
  if (!res.ok) {
    const error = (body as { error?: { message?: string; issues?: { path: string; message: string }[] } } | undefined)?.error;
    throw new ApiError(res.status, error?.message ?? `${res.status} ${res.statusText}`, error?.issues);
  }
  return body as T;
}

export const getJob = (id: string) => apiJson<Job>(`/jobs/${encodeURIComponent(id)}`);

export const cancelJob = (id: string) => apiJson<Job & { message: string }>(`/jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });

export function submitJob(spec: Record<string, unknown>): Promise<Job> {
  return apiJson<Job>('/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
}

export async function listJobs(query: { state?: string; label?: string; limit?: number; cursor?: string }): Promise<JobPage> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') params.set(k, String(v));
  const body = await apiJson<{ jobs?: Job[]; items?: Job[]; nextCursor?: string | null }>(`/jobs?${params}`);
  return { jobs: body.jobs ?? body.items ?? [], nextCursor: body.nextCursor ?? undefined };
}
