import { createRoute, z } from '@hono/zod-openapi';
import { WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { stream, streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { Config } from '../domain/config.js';
import { JOB_STATES } from '../domain/job-state.js';
import type { LogStore } from '../log-store/log-store.js';
import { LogTails, type LogTailsOptions } from '../log-store/log-tail.js';
import { errorResponse } from './errors.js';
import { sseLineEvents } from './sse-lines.js';
import { decimalInt } from './params.js';
import { describeJob, JobIdParams } from './job-view.js';
import { createRouter, findJob } from './router.js';

export interface LogsDeps {
  client: Client;
  logStore: LogStore;
  config: Pick<Config, 'HODEI_SSE_KEEPALIVE_SECONDS'>;
  /** Tuning of live tails (poll interval…); defaults suit production. */
  tail?: Partial<Omit<LogTailsOptions<JobEnd>, 'watchEnd'>>;
  onError?: (err: unknown) => void;
  /** Aborted when the API shuts down: each live stream then sends a `shutdown` event and closes. */
  shutdown?: AbortSignal;
}

/** The data of the `shutdown` event: the API is going away; reconnect with `Last-Event-ID` to go on. */
export const SHUTDOWN_EVENT = {
  event: 'shutdown',
  data: JSON.stringify({ reason: 'the API is shutting down; reconnect with Last-Event-ID' }),
  retry: 1000,
};

/** The data of the final SSE event. */
export const JobEndSchema = z.object({
  state: z.enum(JOB_STATES),
  exitCode: z.number().int().optional(),
});
export type JobEnd = z.infer<typeof JobEndSchema>;

/** The data of each line's SSE event (its `id` is `seq`). */
export const LogEventSchema = z.object({
  seq: z.number().int(),
  stream: z.enum(['stdout', 'stderr', 'system']),
  ts: z.number().int().describe('when the platform read the line, ms since the epoch'),
  line: z.string(),
  attempt: z.number().int(),
});

/** A seq: 0 (before the first line) or a line's. */
const Seq = () => decimalInt(0, Number.MAX_SAFE_INTEGER);

const getLogs = createRoute({
  method: 'get',
  path: '/{id}/logs',
  summary: "The job's output so far, stdout and stderr interleaved in the order printed",
  request: {
    params: JobIdParams,
    query: z.object({
      stream: z.enum(['stdout', 'stderr', 'system']).optional().describe('only this stream'),
      tail: decimalInt(1, 1_000_000, 'only the last N lines').optional(),
    }),
  },
  responses: {
    200: { content: { 'text/plain': { schema: z.string() } }, description: 'The output, one line per line' },
    400: errorResponse('Bad query'),
    404: errorResponse('No such job'),
  },
});

const streamLogs = createRoute({
  method: 'get',
  path: '/{id}/logs/stream',
  summary: 'Follow the output live (Server-Sent Events)',
  description:
    'Stored lines first, then live lines as printed, then one `end` event with the final state, then the stream ' +
    'closes (when the API shuts down first, one `shutdown` event instead: reconnect to go on). Each line is an ' +
    'event whose `id` is its seq and whose data is a LogEvent; reconnect with ' +
    '`Last-Event-ID` (or `?after=SEQ`) to get every later line exactly once. Comments keep a quiet stream alive.',
  request: {
    params: JobIdParams,
    query: z.object({ after: Seq().optional().openapi({ description: 'only lines with a greater seq' }) }),
    headers: z.object({
      'last-event-id': z
        .union([z.literal(''), Seq()])
        .optional()
        .openapi({ type: 'integer', minimum: 0, description: 'as `after`; wins over it (empty: as if absent)' }),
    }),
  },
  responses: {
    200: {
      content: {
        'text/event-stream': { schema: z.string().describe('events: (default) LogEvent, `end` JobEnd, `shutdown`') },
      },
      description: 'The event stream',
    },
    400: errorResponse('Bad query'),
    404: errorResponse('No such job'),
  },
});

/** A text log is sent a page at a time: at most this many lines, or about this many bytes. */
const LOG_PAGE = 5000;
const LOG_PAGE_BYTES = 1024 * 1024;

/**
 * Aborts once the client has gone: its request's signal (the connection closed) or the response
 * stream's abort, whichever the server reports first. A write to a gone client does not fail
 * (hono drops it), so a loop must ask this before each read.
 */
function clientGone(request: AbortSignal): AbortController {
  const gone = new AbortController();
  if (request.aborted) gone.abort();
  else request.addEventListener('abort', () => gone.abort(), { once: true });
  return gone;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The log routes, mounted under /jobs. */
export function logsApp({ client, logStore, config, tail, onError, shutdown }: LogsDeps) {
  const app = createRouter();
  app.openAPIRegistry.register('LogEvent', LogEventSchema);
  app.openAPIRegistry.register('JobEnd', JobEndSchema);

  const tails = new LogTails<JobEnd>(
    logStore,
    {
      idleMs: config.HODEI_SSE_KEEPALIVE_SECONDS * 1000,
      pageBytes: LOG_PAGE_BYTES,
      ...tail,
      watchEnd: (id, signal) => watchEnd(client, id, signal),
    },
    onError,
  );

  app.openapi(getLogs, async (c) => {
    const { id } = c.req.valid('param');
    const query = c.req.valid('query');
    await findJob(client, id, { runStart: false });
    // A tail ends at the last line stored when it was asked for (a live job prints on).
    const untilSeq = query.tail === undefined ? undefined : await logStore.lastSeq(id);
    let afterSeq =
      query.tail === undefined ? 0 : await logStore.tailStart(id, query.tail, { stream: query.stream, untilSeq });
    const gone = clientGone(c.req.raw.signal);
    c.header('Content-Type', 'text/plain; charset=utf-8');
    // Page through the store, a bounded page at a time, so no log is ever held in memory whole;
    // stop reading as soon as the client has gone.
    return stream(c, async (out) => {
      out.onAbort(() => gone.abort());
      while (!gone.signal.aborted) {
        let lines = await logStore.read(id, {
          afterSeq,
          limit: LOG_PAGE,
          maxBytes: LOG_PAGE_BYTES,
          stream: query.stream,
        });
        if (untilSeq !== undefined) lines = lines.filter((l) => l.seq <= untilSeq);
        if (lines.length === 0 || gone.signal.aborted) break;
        await out.write(lines.map((l) => `${l.line}\n`).join(''));
        afterSeq = lines[lines.length - 1]!.seq;
        if (untilSeq !== undefined && afterSeq >= untilSeq) break;
        // Other requests get their turn between pages (a page is read synchronously).
        await yieldToEventLoop();
      }
    }) as never;
  });

  app.openapi(streamLogs, async (c) => {
    const { id } = c.req.valid('param');
    const lastEventId = c.req.valid('header')['last-event-id'];
    const after = lastEventId !== undefined && lastEventId !== '' ? lastEventId : (c.req.valid('query').after ?? 0);
    await findJob(client, id, { runStart: false });
    const gone = clientGone(c.req.raw.signal);
    return streamSSE(c, async (sse) => {
      const stop = new AbortController();
      sse.onAbort(() => stop.abort());
      // The client gone (the connection closed): stop reading at once.
      if (gone.signal.aborted) stop.abort();
      else gone.signal.addEventListener('abort', () => stop.abort(), { once: true });
      const onShutdown = () => stop.abort();
      shutdown?.addEventListener('abort', onShutdown);
      if (shutdown?.aborted) stop.abort();
      try {
        const ended = await followJob(sse, stop.signal);
        if (!ended && shutdown?.aborted && !sse.aborted) await sse.writeSSE(SHUTDOWN_EVENT);
      } finally {
        shutdown?.removeEventListener('abort', onShutdown);
      }
    }) as never;
    /** Sends the job's lines, then its end; false when `signal` stopped it first. */
    async function followJob(sse: SSEStreamingApi, signal: AbortSignal): Promise<boolean> {
      for await (const event of tails.follow(id, after, signal)) {
        if (sse.aborted || gone.signal.aborted) break;
        if ('lines' in event) {
          // One write per batch of lines rather than per line (a 50 MB log is half a million
          // events). Same framing as writeSSE: JSON data holds no line breaks, ids are numbers.
          await sse.write(sseLineEvents(event.lines));
        } else if ('idle' in event) {
          await sse.write(': keep-alive\n\n');
        } else {
          await sse.writeSSE({ event: 'end', data: JSON.stringify(event.end) });
          return true;
        }
      }
      return false;
    }
  });

  return app;
}

/** Whether the job's workflow has closed, or Temporal no longer knows it. */
export async function workflowFinished(client: Client, id: string): Promise<boolean> {
  try {
    return (await client.workflow.getHandle(id).describe()).status.name !== 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return true;
    throw err;
  }
}

/** Resolves once the job's workflow has closed (so its run activity stored every line). */
async function watchEnd(client: Client, id: string, signal: AbortSignal): Promise<JobEnd> {
  const handle = client.workflow.getHandle(id);
  for (;;) {
    try {
      await client.withAbortSignal(signal, () => handle.result());
      break;
    } catch (err) {
      if (err instanceof WorkflowFailedError) break;
      if (signal.aborted) throw err;
      // Temporal unreachable for a moment: ask again.
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  const job = await describeJob(client, id, { runStart: false });
  return { state: job?.state ?? 'FAILED', exitCode: job?.exitCode };
}
