/**
 * Splits a byte stream into lines. Bytes are kept until a newline arrives, so multi-byte
 * characters split across chunks decode intact; a line longer than `maxLineBytes` is cut into
 * pieces of that size rather than buffered without bound. Invalid UTF-8 becomes U+FFFD.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLineBytes = 64 * 1024,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      // Fast path, the common case: a whole short line, decoded in place without copying.
      if (newline !== -1 && this.pendingBytes === 0 && newline - start <= this.maxLineBytes) {
        this.onLine(chunk.toString('utf8', start, newline));
        start = newline + 1;
        continue;
      }
      const end = newline === -1 ? chunk.length : newline;
      this.accumulate(chunk.subarray(start, end));
      if (newline === -1) return;
      this.emitPending();
      start = newline + 1;
    }
  }

  /** Emits a final line that had no newline. */
  flush(): void {
    if (this.pendingBytes > 0) this.emitPending();
  }

  private accumulate(bytes: Buffer): void {
    let rest = bytes;
    while (this.pendingBytes + rest.length > this.maxLineBytes) {
      const room = this.maxLineBytes - this.pendingBytes;
      const piece = Buffer.concat([...this.pending, rest.subarray(0, room)], this.maxLineBytes);
      // Cut before a character that would straddle the cut, so both pieces decode intact.
      const cut = utf8Boundary(piece);
      this.pending = [];
      this.pendingBytes = 0;
      this.onLine(piece.subarray(0, cut).toString('utf8'));
      rest = Buffer.concat([piece.subarray(cut), rest.subarray(room)]);
    }
    if (rest.length > 0) {
      this.pending.push(Buffer.from(rest));
      this.pendingBytes += rest.length;
    }
  }

  private emitPending(): void {
    const line = Buffer.concat(this.pending, this.pendingBytes).toString('utf8');
    this.pending = [];
    this.pendingBytes = 0;
    this.onLine(line);
  }
}

/**
 * The length of `buf` without a trailing incomplete UTF-8 sequence. Bytes that are not valid
 * UTF-8 anyway are left in place (they decode to U+FFFD wherever they are cut).
 */
function utf8Boundary(buf: Buffer): number {
  for (let back = 1; back <= 3 && back <= buf.length; back++) {
    const byte = buf[buf.length - back]!;
    if ((byte & 0xc0) === 0x80) continue; // continuation byte: look further back
    const length = byte >= 0xf8 ? 1 : byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    if (length > back && buf.length > back) return buf.length - back;
    return buf.length;
  }
  return buf.length;
}
