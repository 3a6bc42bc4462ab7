import { createParser } from 'eventsource-parser';
import {
  createApiClient,
  errorMessage,
  type ApiClient,
  type ArtifactList,
  type CancelAnswer,
  type JobEnd,
  type JobPage,
  type JobSpec,
  type JobView,
  type ListQuery,
  type LogEvent,
  type ScheduleCreate,
  type SchedulePage,
  type ScheduleView,
  type PipelineCancelAnswer,
  type PipelineListQuery,
  type PipelinePage,
  type PipelineSpec,
  type PipelineView,
} from '../api-client/index.js';

export type { JobEnd, LogEvent };
/** A job as the API answers it. */
export type Job = JobView;

/** An error answer of the API, with its one error shape's message. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The Hodei HTTP API with a token, over the generated client; errors become ApiErrors. */
export class HodeiClient {
  private readonly api: ApiClient;

  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {
    this.api = createApiClient({ baseUrl, token });
  }

  artifacts(id: string): Promise<ArtifactList> {
    return this.call(() => this.api.GET('/jobs/{id}/artifacts', { params: { path: { id } } }));
  }

  /** One artifact's bytes, streamed (a path with slashes: each segment encoded). */
  async artifact(id: string, artifactPath: string): Promise<ReadableStream<Uint8Array>> {
    const encoded = artifactPath.split('/').map(encodeURIComponent).join('/');
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}/jobs/${encodeURIComponent(id)}/artifacts/${encoded}`, {
        headers: this.token ? { authorization: `Bearer ${this.token}` } : {},
      });
    } catch (err) {
      throw new ApiError(0, `cannot reach the Hodei API at ${this.baseUrl}: ${(err as Error).message}`);
    }
    if (res.status !== 200 || !res.body) {
      const body = (await res.json().catch(() => undefined)) as unknown;
      throw new ApiError(res.status, `${res.status}: ${errorMessage(body, res.statusText)}`);
    }
    return res.body;
  }

  /** The answer's data; an ApiError for an error answer (status 0 when the API cannot be reached). */
  private async call<T>(request: () => Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
    let answer: { data?: T; error?: unknown; response: Response };
    try {
      answer = await request();
    } catch (err) {
      throw new ApiError(0, `cannot reach the Hodei API at ${this.baseUrl}: ${(err as Error).message}`);
    }
    const { response } = answer;
    if (response.status >= 400 || answer.data === undefined) {
      const hint = response.status === 401 ? ' (set HODEI_TOKEN or --token; `npm start` prints one)' : '';
      throw new ApiError(
        response.status,
        `${response.status}: ${errorMessage(answer.error, response.statusText)}${hint}`,
      );
    }
    return answer.data;
  }

  submit(spec: JobSpec, idempotencyKey?: string): Promise<Job> {
    return this.call(() =>
      this.api.POST('/jobs', {
        body: spec,
        params: { header: idempotencyKey ? { 'idempotency-key': idempotencyKey } : {} },
      }),
    );
  }

  job(id: string): Promise<Job> {
    return this.call(() => this.api.GET('/jobs/{id}', { params: { path: { id } } }));
  }

  cancel(id: string): Promise<CancelAnswer> {
    return this.call(() => this.api.POST('/jobs/{id}/cancel', { params: { path: { id } } }));
  }

  list(query: ListQuery): Promise<JobPage> {
    return this.call(() => this.api.GET('/jobs', { params: { query } }));
  }

  createSchedule(body: ScheduleCreate): Promise<ScheduleView> {
    return this.call(() => this.api.POST('/schedules', { body }));
  }

  schedules(query: { limit?: number; cursor?: string }): Promise<SchedulePage> {
    return this.call(() => this.api.GET('/schedules', { params: { query } }));
  }

  schedule(id: string): Promise<ScheduleView> {
    return this.call(() => this.api.GET('/schedules/{id}', { params: { path: { id } } }));
  }

  /** `pause`, `unpause` or `trigger` (fires it once now). */
  scheduleAction(id: string, action: 'pause' | 'unpause' | 'trigger'): Promise<ScheduleView> {
    const params = { params: { path: { id } } };
    return this.call(() =>
      action === 'pause'
        ? this.api.POST('/schedules/{id}/pause', params)
        : action === 'unpause'
          ? this.api.POST('/schedules/{id}/unpause', params)
          : this.api.POST('/schedules/{id}/trigger', params),
    );
  }

  /** Deletes a schedule (its answer has no body). */
  async deleteSchedule(id: string): Promise<void> {
    await this.call(async () => {
      const answer = await this.api.DELETE('/schedules/{id}', { params: { path: { id } } });
      return { ...answer, data: answer.response.status === 204 ? true : undefined };
    });
  }

  submitPipeline(spec: PipelineSpec, idempotencyKey?: string): Promise<PipelineView> {
    return this.call(() =>
      this.api.POST('/pipelines', {
        body: spec,
        params: { header: idempotencyKey ? { 'idempotency-key': idempotencyKey } : {} },
      }),
    );
  }

  pipeline(id: string): Promise<PipelineView> {
    return this.call(() => this.api.GET('/pipelines/{id}', { params: { path: { id } } }));
  }

  cancelPipeline(id: string): Promise<PipelineCancelAnswer> {
    return this.call(() => this.api.POST('/pipelines/{id}/cancel', { params: { path: { id } } }));
  }

  pipelines(query: PipelineListQuery): Promise<PipelinePage> {
    return this.call(() => this.api.GET('/pipelines', { params: { query } }));
  }

  logs(id: string): Promise<string> {
    return this.call(() => this.api.GET('/jobs/{id}/logs', { params: { path: { id } }, parseAs: 'text' }));
  }

  /**
   * Follows a job's output over SSE until its `end` event; reconnects after a dropped connection
   * with `Last-Event-ID`, so no line is lost or repeated.
   */
  async follow(id: string, onLine: (event: LogEvent) => void): Promise<JobEnd> {
    let lastId: number | undefined;
    for (let failures = 0; ;) {
      let end: JobEnd | undefined;
      try {
        const body = await this.call(() =>
          this.api.GET('/jobs/{id}/logs/stream', {
            params: { path: { id }, header: lastId !== undefined ? { 'last-event-id': lastId } : {} },
            headers: { accept: 'text/event-stream' },
            parseAs: 'stream',
          }),
        );
        const parser = createParser({
          onEvent: (event) => {
            if (event.event === 'end') end = JSON.parse(event.data) as JobEnd;
            else if (!event.event) {
              if (event.id) lastId = Number(event.id);
              onLine(JSON.parse(event.data) as LogEvent);
            }
          },
        });
        const decoder = new TextDecoder();
        for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
          parser.feed(decoder.decode(chunk, { stream: true }));
          failures = 0;
        }
      } catch (err) {
        if (err instanceof ApiError && err.status !== 0) throw err;
        failures += 1;
        if (failures > 30) throw err;
      }
      if (end) return end;
      await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** failures)));
    }
  }
}
