/**
 * Reading a container's output from the Docker engine: its multiplexed stream's framing (an
 * attach, or the log endpoint) with back-pressure to the store, and where a re-read of the log
 * has got to.
 */
import type { Readable } from 'node:stream';
import type { LineSplitter } from './line-splitter.js';

/**
 * Where a read of the container's log has got to, from Docker's per-message timestamps (second
 * precision is enough): messages seen per second of their timestamp, for the last few seconds.
 * A second read `since` a little before the last one seen returns, in the log's order, first the
 * messages already seen there (the first read saw a prefix of the log), then the new ones.
 */
export class LogPosition {
  private readonly perSecond = new Map<number, number>();
  private latest = 0;
  private toSkip = 0;
  private lastStamp = '';
  private lastSecond = NaN;

  /** Takes demuxed frames (one frame = one timestamped message) to the splitters. */
  reader(stdout: LineSplitter, stderr: LineSplitter): (streamType: number, frame: Buffer) => void {
    return (streamType, frame) => {
      const content = this.message(frame);
      if (content) (streamType === 2 ? stderr : stdout).push(content);
    };
  }

  /** Where to read from again, and how many messages there were seen already. */
  resumePoint(): { since: number; skip: number } {
    if (this.latest === 0) return { since: 0, skip: 0 };
    // Two seconds back: stdout and stderr are logged by separate copiers, so timestamps in the
    // log are not quite in order.
    const since = this.latest - 2;
    let skip = 0;
    for (const [second, count] of this.perSecond) if (second >= since) skip += count;
    return { since, skip };
  }

  /** The next `count` messages were seen before: drop them. */
  skip(count: number): void {
    this.toSkip = count;
  }

  /** The message's content without its timestamp; undefined for a message to skip. */
  private message(frame: Buffer): Buffer | undefined {
    if (this.toSkip > 0) {
      this.toSkip -= 1;
      return undefined;
    }
    const space = frame.indexOf(0x20);
    if (space <= 0) return frame;
    const stamp = frame.toString('latin1', 0, 19);
    if (stamp !== this.lastStamp) {
      this.lastStamp = stamp;
      this.lastSecond = Math.floor(Date.parse(`${stamp}Z`) / 1000);
    }
    const second = this.lastSecond;
    if (Number.isNaN(second)) return frame;
    this.perSecond.set(second, (this.perSecond.get(second) ?? 0) + 1);
    if (second > this.latest) {
      this.latest = second;
      for (const s of this.perSecond.keys()) if (s < second - 10) this.perSecond.delete(s);
    }
    return frame.subarray(space + 1);
  }
}

/** How a read of the output ended: its end, a close or an error before that, or `detach`. */
export type PumpEnd = { how: 'end' | 'close' | 'detach'; error?: undefined } | { how: 'error'; error: unknown };

/**
 * Reads Docker's multiplexed output stream (frames of an 8-byte header — stream type, 3 zero bytes,
 * big-endian length — then the payload) and hands each frame to `onFrame`, storing each chunk's
 * complete lines before reading on, so memory stays bounded whatever the output's size. Resolves
 * when the stream ends (the container stopped) or breaks, or on `detach`, when the activity lets
 * go of a container that goes on running; rejects when storing fails. (dockerode's demuxStream
 * copies the rest of its buffer for every frame, quadratic in a chunk's frame count: far too slow
 * for a million short lines; it also recurses once per frame and writes to streams with no way
 * to pause for the store. Still so in docker-modem 5.0.7.)
 */
export function pumpOutput(
  output: Readable,
  onFrame: (streamType: number, payload: Buffer) => void,
  pendingLines: () => number,
  flush: () => Promise<void>,
  detach: AbortSignal,
): Promise<PumpEnd> {
  return new Promise<PumpEnd>((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0);
    let flushing: Promise<void> | undefined;
    let scheduled = false;
    let ended: PumpEnd | undefined;
    // One store write at a time, with the stream paused meanwhile (back-pressure to Docker).
    const store = () => {
      if (ended || flushing || pendingLines() === 0) return;
      output.pause();
      flushing = flush().then(
        () => {
          flushing = undefined;
          if (!output.destroyed) output.resume();
        },
        (err: unknown) => {
          output.destroy();
          reject(err);
        },
      );
    };
    output.on('data', (chunk: Buffer) => {
      const buf = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
      let offset = 0;
      while (buf.length - offset >= 8) {
        const size = buf.readUInt32BE(offset + 4);
        if (buf.length - offset - 8 < size) break;
        onFrame(buf[offset]!, buf.subarray(offset + 8, offset + 8 + size));
        offset += 8 + size;
      }
      // Copied, so a small remainder never pins a whole chunk.
      pending = Buffer.from(buf.subarray(offset));
      // Store in batches, once the chunks already received are split (setImmediate runs after
      // pending I/O), or at once when a batch is large.
      if (pendingLines() >= MAX_BATCH_LINES) store();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(() => {
          scheduled = false;
          store();
        });
      }
    });
    const finish = (end: PumpEnd) => {
      if (ended) return;
      ended = end;
      // The caller stores what is left; never while a write is in flight (writes stay in order).
      void (flushing ?? Promise.resolve()).then(() => resolve(end));
    };
    // A stream that broke before it was handed here.
    if (output.destroyed) finish(output.errored ? { how: 'error', error: output.errored } : { how: 'close' });
    output.once('end', () => finish({ how: 'end' }));
    output.once('close', () => finish({ how: 'close' }));
    output.once('error', (error: unknown) => finish({ how: 'error', error }));
    detach.addEventListener(
      'abort',
      () => {
        finish({ how: 'detach' });
        output.destroy();
      },
      { once: true },
    );
  });
}

/** Lines stored in one write at most. */
const MAX_BATCH_LINES = 2000;
