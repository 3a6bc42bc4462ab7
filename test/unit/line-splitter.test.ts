import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../../activities/line-splitter.js';

function split(chunks: Array<string | Buffer>, max?: number): string[] {
  const lines: string[] = [];
  const splitter = new LineSplitter((l) => lines.push(l), max);
  for (const c of chunks) splitter.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  splitter.flush();
  return lines;
}

describe('LineSplitter', () => {
  it('splits on newlines across chunk boundaries', () => {
    expect(split(['a\nb', 'c\n', '\nd\n'])).toEqual(['a', 'bc', '', 'd']);
  });

  it('keeps a final line without a newline', () => {
    expect(split(['x\nlast'])).toEqual(['x', 'last']);
  });

  it('decodes a multi-byte character split across chunks', () => {
    const bytes = Buffer.from('é\n');
    expect(split([bytes.subarray(0, 1), bytes.subarray(1)])).toEqual(['é']);
  });

  it('replaces invalid UTF-8 instead of dropping the line', () => {
    expect(split([Buffer.from([0x61, 0xff, 0x62, 0x0a])])).toEqual(['a\uFFFDb']);
  });

  it('cuts an over-long line into pieces of the maximum size', () => {
    expect(split(['abcdefg\n'], 3)).toEqual(['abc', 'def', 'g']);
  });

  it('passes carriage returns and ANSI codes through', () => {
    expect(split(['10%\r20%\r\x1b[31mred\x1b[0m\n'])).toEqual(['10%\r20%\r\x1b[31mred\x1b[0m']);
  });
});

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
