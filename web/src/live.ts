import { createParser } from 'eventsource-parser';
import type { JobEnd, LogEvent } from '../../api-client/index.js';
import { ApiError, JOB_STATES, request } from './api.js';

/** A log line as `GET /jobs/:id/logs/stream` sends it (the event id is `seq`), and its final event. */
export type { JobEnd, LogEvent };

export type FollowStatus = 'connecting' | 'live' | 'reconnecting' | 'ended' | 'failed';

export interface FollowHandlers {
  onLines(lines: LogEvent[]): void;
  onEnd(end: JobEnd): void;
  onStatus(status: FollowStatus, detail?: string): void;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/**
 * Follows a job's log over SSE with fetch() (EventSource cannot send the Authorization header).
 * After a dropped connection it reconnects with `Last-Event-ID` = the last seq it delivered, and
 * drops any line at or below it, so the reader sees every line exactly once.
 */
export async function followLog(jobId: string, handlers: FollowHandlers, signal: AbortSignal): Promise<void> {
  let lastSeq = 0;
  let delayMs = 500;
  while (!signal.aborted) {
    handlers.onStatus(lastSeq === 0 ? 'connecting' : 'reconnecting');
    let ended = false;
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (lastSeq > 0) headers['last-event-id'] = String(lastSeq);
      const res = await request(`/jobs/${encodeURIComponent(jobId)}/logs/stream`, { headers, signal });
      if (res.status === 404) throw new ApiError(404, 'no such job');
      if (!res.ok || !res.body) throw new Error(`log stream answered ${res.status}`);
      handlers.onStatus('live');
      delayMs = 500;
      let batch: LogEvent[] = [];
      const parser = createParser({
        onEvent(event) {
          if (event.event === 'end') {
            ended = true;
            // Every line before the end is shown before the end is announced.
            if (batch.length > 0) handlers.onLines(batch);
            batch = [];
            const end = JSON.parse(event.data) as JobEnd;
            if (JOB_STATES.includes(end.state)) handlers.onEnd(end);
            return;
          }
          const line = JSON.parse(event.data) as LogEvent;
          if (line.seq > lastSeq) {
            lastSeq = line.seq;
            batch.push(line);
          }
        },
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(value);
        if (batch.length > 0) {
          handlers.onLines(batch);
          batch = [];
        }
        if (ended) break;
      }
      if (ended) {
        await reader.cancel().catch(() => undefined);
        handlers.onStatus('ended');
        return;
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && (err.status === 401 || err.status === 404)) {
        handlers.onStatus('failed', err.message);
        return;
      }
    }
    // The stream closed before its end event (server restart, network): resume after a pause.
    handlers.onStatus('reconnecting');
    await sleep(delayMs, signal);
    delayMs = Math.min(delayMs * 2, 5000);
  }
}
