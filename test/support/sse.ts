import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { LogLine } from '../../log-store/log-store.js';
import { authHeaders } from './api-client.js';
import { waitFor } from './wait.js';

/** A log line as the SSE stream sends it: the stored line itself. */
export type LogEvent = LogLine;

/** An open SSE connection that records what arrives. */
export interface SseConnection {
  status: number;
  /** Every event, in arrival order. */
  events: EventSourceMessage[];
  /** Arrival time (ms since the epoch) of each event. */
  arrivals: number[];
  comments: string[];
  /** Resolves when the server closes the stream (or it is closed here). */
  closed: Promise<void>;
  /** The line events' data. */
  lines(): LogEvent[];
  /** The `end` event's data, once it came. */
  end(): { state: string; exitCode?: number } | undefined;
  waitForLines(count: number, timeoutMs?: number): Promise<LogEvent[]>;
  close(): void;
}

/** Opens `url` as an SSE stream (fetch + a maintained SSE parser), optionally resuming. */
export async function openSse(
  url: string,
  options: { lastEventId?: string; token?: string } = {},
): Promise<SseConnection> {
  const abort = new AbortController();
  const headers: Record<string, string> = { accept: 'text/event-stream', ...authHeaders(options.token) };
  if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
  const res = await fetch(url, { headers, signal: abort.signal });
  const events: EventSourceMessage[] = [];
  const arrivals: number[] = [];
  const comments: string[] = [];
  const parser = createParser({
    onEvent: (e) => {
      events.push(e);
      arrivals.push(Date.now());
    },
    onComment: (c) => comments.push(c),
  });
  const closed = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>)
        parser.feed(decoder.decode(chunk, { stream: true }));
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
  })();
  const lines = () => events.filter((e) => !e.event).map((e) => JSON.parse(e.data) as LogEvent);
  return {
    status: res.status,
    events,
    arrivals,
    comments,
    closed,
    lines,
    end: () => {
      const e = events.find((ev) => ev.event === 'end');
      return e ? (JSON.parse(e.data) as { state: string; exitCode?: number }) : undefined;
    },
    waitForLines: (count, timeoutMs = 60_000) =>
      waitFor(`${count} SSE lines`, () => (lines().length >= count ? lines() : undefined), {
        timeoutMs,
        intervalMs: 10,
      }),
    close: () => abort.abort(),
  };
}
