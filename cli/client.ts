import { createParser } from 'eventsource-parser';

/** A job as the API answers it (the fields the CLI shows). */
export interface Job {
  id: string;
  name: string;
  state: string;
  exitCode?: number;
  reason?: string;
  image?: string;
  labels: Record<string, string>;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  host?: string;
  attempt?: number;
}

export interface LogEvent {
  seq: number;
  stream: 'stdout' | 'stderr' | 'system';
  line: string;
}

export interface JobEnd {
  state: string;
  exitCode?: number;
}

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

/** The Hodei HTTP API with a token. */
export class HodeiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {}

  private async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.token) headers.set('authorization', `Bearer ${this.token}`);
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, { ...init, headers });
    } catch (err) {
      throw new ApiError(0, `cannot reach the Hodei API at ${this.baseUrl}: ${(err as Error).message}`);
    }
    if (res.status >= 400) {
      const body = (await res.json().catch(() => undefined)) as { error?: { message?: string } } | undefined;
      const hint = res.status === 401 ? ' (set HODEI_TOKEN or --token; `npm start` prints one)' : '';
      throw new ApiError(res.status, `${res.status}: ${body?.error?.message ?? res.statusText}${hint}`);
    }
    return res;
  }

  private async json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.request(path, init)).json()) as T;
  }

  submit(spec: Record<string, unknown>, idempotencyKey?: string): Promise<Job> {
    return this.json('/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) },
      body: JSON.stringify(spec),
    });
  }

  job(id: string): Promise<Job> {
    return this.json(`/jobs/${encodeURIComponent(id)}`);
  }

  cancel(id: string): Promise<Job & { message: string }> {
    return this.json(`/jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
  }

  list(query: URLSearchParams): Promise<{ jobs: Job[]; nextCursor?: string }> {
    return this.json(`/jobs?${query}`);
  }

  async logs(id: string): Promise<string> {
    return (await this.request(`/jobs/${encodeURIComponent(id)}/logs`)).text();
  }

  /**
   * Follows a job's output over SSE until its `end` event; reconnects after a dropped connection
   * with `Last-Event-ID`, so no line is lost or repeated.
   */
  async follow(id: string, onLine: (event: LogEvent) => void): Promise<JobEnd> {
    let lastId: string | undefined;
    for (let failures = 0; ; ) {
      let end: JobEnd | undefined;
      try {
        const res = await this.request(`/jobs/${encodeURIComponent(id)}/logs/stream`, {
          headers: { accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) },
        });
        const parser = createParser({
          onEvent: (event) => {
            if (event.event === 'end') end = JSON.parse(event.data) as JobEnd;
            else if (!event.event) {
              if (event.id) lastId = event.id;
              onLine(JSON.parse(event.data) as LogEvent);
            }
          },
        });
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
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
