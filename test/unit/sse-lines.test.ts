import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { describe, expect, it } from 'vitest';
import { sseLineEvents } from '../../api/sse-lines.js';
import type { LogLine } from '../../log-store/log-store.js';

// What the SSE route sent before: JSON.stringify of each line, framed as writeSSE frames it.
const framed = (lines: LogLine[]) => lines.map((l) => `data: ${JSON.stringify(l)}\nid: ${l.seq}\n\n`).join('');

const texts = [
  '',
  'plain',
  'quotes " and \\ backslashes',
  'tab\tcarriage\rreturn',
  '\u001b[31mred\u001b[0m',
  'NUL \u0000 and U+FFFD \uFFFD',
  'é 日本 🎉',
  'lone surrogates \ud800 \udfff',
  'line separators \u2028 \u2029',
  '</script> <b>&amp;',
  'x'.repeat(70_000),
];

describe('sseLineEvents', () => {
  const lines: LogLine[] = texts.map((line, i) => ({
    seq: i + 1,
    stream: (['stdout', 'stderr', 'system'] as const)[i % 3]!,
    ts: 1_764_300_000_000 + i,
    line,
    attempt: 1 + (i % 3),
  }));

  it('is byte for byte the JSON.stringify framing, for every stream and any text', () => {
    expect(sseLineEvents(lines)).toBe(framed(lines));
    expect(Buffer.from(sseLineEvents(lines))).toEqual(Buffer.from(framed(lines)));
    expect(sseLineEvents([])).toBe('');
    const big = [{ seq: 9_007_199_254_740_991, stream: 'stdout' as const, ts: 0, line: 'edge', attempt: 1 }];
    expect(sseLineEvents(big)).toBe(framed(big));
  });

  it('parses back to the same lines, one event each, ids their seqs', () => {
    const events: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (e) => events.push(e) });
    // Fed in small pieces: an event split anywhere still parses whole.
    const text = sseLineEvents(lines);
    for (let at = 0; at < text.length; at += 7) parser.feed(text.slice(at, at + 7));
    expect(events.map((e) => JSON.parse(e.data) as LogLine)).toEqual(lines);
    expect(events.map((e) => e.id)).toEqual(lines.map((l) => String(l.seq)));
  });
});
