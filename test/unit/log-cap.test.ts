import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../../activities/line-splitter.js';
import { LogCap } from '../../activities/output-lines.js';
import { LogPosition } from '../../activities/run-script.js';

describe('LineSplitter on long lines', () => {
  it('never cuts a multi-byte character in two', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((l) => lines.push(l), 4);
    splitter.push(Buffer.from('abcé€😀x\n'));
    splitter.flush();
    expect(lines.join('')).toBe('abcé€😀x');
    expect(lines.every((l) => !l.includes('\uFFFD'))).toBe(true);
    expect(lines.every((l) => Buffer.byteLength(l) <= 4)).toBe(true);
  });

  it('passes carriage returns and ANSI codes through', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((l) => lines.push(l));
    splitter.push(Buffer.from('10%\r50%\r100%\n\x1b[31mred\x1b[0m\n'));
    expect(lines).toEqual(['10%\r50%\r100%', '\x1b[31mred\x1b[0m']);
  });
});

describe('LogCap', () => {
  it('keeps lines up to the cap, then counts what it drops; the marker takes the first dropped seq', () => {
    const cap = new LogCap(10);
    expect(cap.keep(1, 'abcd')).toBe(true); // 5 bytes with its newline
    expect(cap.keep(2, 'efgh')).toBe(true); // 10
    expect(cap.keep(3, 'i')).toBe(false);
    expect(cap.keep(4, '')).toBe(false); // never resumes once over
    const marker = cap.marker(1)!;
    expect(marker).toMatchObject({ seq: 3, stream: 'system', attempt: 1 });
    expect(marker.line).toContain('2 lines, 3 bytes dropped');
  });

  it('has no marker under the cap', () => {
    const cap = new LogCap(100);
    cap.keep(1, 'x');
    expect(cap.marker(1)).toBeUndefined();
  });
});

describe('LogPosition', () => {
  const frame = (second: number, text: string) =>
    Buffer.from(`${new Date(second * 1000).toISOString().slice(0, 19)}.123456789Z ${text}`);

  it('strips timestamps and, on a second read, skips the messages the first one saw', () => {
    const out: string[] = [];
    const splitter = new LineSplitter((l) => out.push(l));
    const position = new LogPosition();
    let read = position.reader(splitter, splitter);
    for (const [s, t] of [[100, 'a\n'], [101, 'b\n'], [103, 'c\n'], [102, 'late\n']] as const) read(1, frame(s, t));
    expect(out).toEqual(['a', 'b', 'c', 'late']);
    // Re-read since 101: b, c, late were seen; then one new message.
    expect(position.resumePoint()).toEqual({ since: 101, skip: 3 });
    position.skip(3);
    read = position.reader(splitter, splitter);
    for (const [s, t] of [[101, 'b\n'], [103, 'c\n'], [102, 'late\n'], [103, 'new']] as const) read(1, frame(s, t));
    splitter.flush();
    expect(out).toEqual(['a', 'b', 'c', 'late', 'new']);
  });
});
