import type { LogLine } from '../log-store/log-store.js';

/** The start of each stream's event data, up to its `ts`: `data: {"seq":` is written before the seq. */
const STREAM_FIELD: Record<string, string> = {
  stdout: ',"stream":"stdout","ts":',
  stderr: ',"stream":"stderr","ts":',
  system: ',"stream":"system","ts":',
};

/**
 * What JSON.stringify escapes in a string (quote, backslash, control characters), and surrogates:
 * a text without any is its own JSON string body (most output lines).
 */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * A batch of log lines as SSE events, one string for one write: per line
 * `data: <LogEvent JSON>\nid: <seq>\n\n`, byte for byte what `JSON.stringify` of the line gives
 * (fields in LogEvent's order: seq, stream, ts, line, attempt), built without an object walk per
 * line: only the line's text is escaped, when it needs it (JSON never holds a line break, so one
 * `data:` field is the whole event). A 50 MB log is half a million events.
 */
export function sseLineEvents(lines: readonly LogLine[]): string {
  let out = '';
  for (const l of lines) {
    const stream = STREAM_FIELD[l.stream] ?? `,"stream":${JSON.stringify(l.stream)},"ts":`;
    const text = NEEDS_ESCAPE.test(l.line) ? JSON.stringify(l.line) : `"${l.line}"`;
    out += `data: {"seq":${l.seq}${stream}${l.ts},"line":${text},"attempt":${l.attempt}}\nid: ${l.seq}\n\n`;
  }
  return out;
}
