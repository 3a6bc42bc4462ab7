import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../../activities/line-splitter.js';
import { LogPosition } from '../../activities/docker-stream.js';

describe('LogPosition', () => {
  const frame = (second: number, text: string) =>
    Buffer.from(`${new Date(second * 1000).toISOString().slice(0, 19)}.123456789Z ${text}`);

  it('strips timestamps and, on a second read, skips the messages the first one saw', () => {
    const out: string[] = [];
    const splitter = new LineSplitter((l) => out.push(l));
    const position = new LogPosition();
    let read = position.reader(splitter, splitter);
    for (const [s, t] of [
      [100, 'a\n'],
      [101, 'b\n'],
      [103, 'c\n'],
      [102, 'late\n'],
    ] as const)
      read(1, frame(s, t));
    expect(out).toEqual(['a', 'b', 'c', 'late']);
    // Re-read since 101: b, c, late were seen; then one new message.
    expect(position.resumePoint()).toEqual({ since: 101, skip: 3 });
    position.skip(3);
    read = position.reader(splitter, splitter);
    for (const [s, t] of [
      [101, 'b\n'],
      [103, 'c\n'],
      [102, 'late\n'],
      [103, 'new'],
    ] as const)
      read(1, frame(s, t));
    splitter.flush();
    expect(out).toEqual(['a', 'b', 'c', 'late', 'new']);
  });
});
