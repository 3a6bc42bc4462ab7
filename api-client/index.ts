/**
 * The one client of the Hodei HTTP API: openapi-fetch over the types generated from the API's
 * own `/openapi.json` (schema.d.ts, by `npm run generate:client`). The CLI, the web page, the
 * benches, the scripts and the test helpers use it; no other module writes a job's shape by hand.
 * No Node-only imports: the web page bundles it.
 */
import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './schema.js';

export type { components, paths };

/** A job as the API shows it. */
export type JobView = components['schemas']['JobView'];
/** A job spec, as `POST /jobs` takes it. */
export type JobSpec = paths['/jobs']['post']['requestBody']['content']['application/json'];
/** The filter and page of `GET /jobs`. */
export type ListQuery = NonNullable<paths['/jobs']['get']['parameters']['query']>;
/** One page of `GET /jobs`. */
export type JobPage = paths['/jobs']['get']['responses'][200]['content']['application/json'];
/** The answer of `POST /jobs/:id/cancel`. */
export type CancelAnswer = paths['/jobs/{id}/cancel']['post']['responses'][202]['content']['application/json'];
/** The data of each line's event on the live log stream (its `id` is `seq`). */
export type LogEvent = components['schemas']['LogEvent'];
/** The data of the live log stream's final `end` event. */
export type JobEnd = components['schemas']['JobEnd'];
/** A schedule as the API shows it. */
export type ScheduleView = components['schemas']['Schedule'];
/** What `POST /schedules` takes. */
export type ScheduleCreate = paths['/schedules']['post']['requestBody']['content']['application/json'];
/** What `PATCH /schedules/:id` takes. */
export type ScheduleUpdate = paths['/schedules/{id}']['patch']['requestBody']['content']['application/json'];
/** One page of `GET /schedules`. */
export type SchedulePage = paths['/schedules']['get']['responses'][200]['content']['application/json'];
/** A pipeline as the API shows it, its steps and their jobs. */
export type PipelineView = components['schemas']['PipelineView'];
/** A pipeline spec, as `POST /pipelines` takes it. */
export type PipelineSpec = paths['/pipelines']['post']['requestBody']['content']['application/json'];
/** The filter and page of `GET /pipelines`. */
export type PipelineListQuery = NonNullable<paths['/pipelines']['get']['parameters']['query']>;
/** One page of `GET /pipelines`. */
export type PipelinePage = paths['/pipelines']['get']['responses'][200]['content']['application/json'];
/** The answer of `POST /pipelines/:id/cancel`. */
export type PipelineCancelAnswer =
  paths['/pipelines/{id}/cancel']['post']['responses'][202]['content']['application/json'];
/** A job's artifacts (`GET /jobs/:id/artifacts`). */
export type ArtifactList = components['schemas']['ArtifactList'];
/** The one error shape of every 4xx/5xx answer. */
export type ErrorBody = components['schemas']['Error'];

export type ApiClient = Client<paths>;

export interface ApiClientOptions {
  /** The API's base URL; '' for the page's own origin. */
  baseUrl: string;
  /** The API token, or how to read it at each request (absent: no `Authorization` header). */
  token?: string | (() => string | null | undefined);
  /** Another fetch (a test's that checks answers, …). */
  fetch?: (request: Request) => Promise<Response>;
  /** Passed to every request (`cache: 'no-store'`, …). */
  init?: Omit<RequestInit, 'headers' | 'body' | 'method'>;
}

export function createApiClient({ baseUrl, token, fetch, init }: ApiClientOptions): ApiClient {
  const client = createClient<paths>({ ...init, baseUrl, ...(fetch ? { fetch } : {}) });
  if (token !== undefined) {
    client.use({
      onRequest({ request }) {
        const value = typeof token === 'function' ? token() : token;
        if (value) request.headers.set('authorization', `Bearer ${value}`);
        return request;
      },
    });
  }
  return client;
}

/** The message of an error answer in the one error shape, or `fallback` for any other body. */
export function errorMessage(error: unknown, fallback: string): string {
  const message = (error as Partial<ErrorBody> | undefined)?.error?.message;
  return typeof message === 'string' ? message : fallback;
}
