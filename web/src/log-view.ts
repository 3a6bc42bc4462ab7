import { AnsiUp } from 'ansi_up';
import type { LogEvent } from './live.js';

const STREAMS = ['stdout', 'stderr', 'system'] as const;
/** Browsers cap an element's height (Chrome ≈ 33.5M px, Firefox ≈ 17.9M px); past this, scroll is scaled. */
const MAX_SCROLL_PX = 8_000_000;

const escapeHtml = (text: string) =>
  text.replace(/[&<>"]/g, (ch) => (ch === '&' ? '&amp;' : ch === '<' ? '&lt;' : ch === '>' ? '&gt;' : '&quot;'));

const pad = (n: number, width = 2) => String(n).padStart(width, '0');
export const formatTime = (ms: number) => {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
};

/**
 * A virtualised log: the lines live in plain arrays (text, plus typed arrays for stream and
 * time), and only the rows in view are in the DOM, so 200,000 lines cost no more to show than 50.
 * Rows have one fixed height (no wrapping; long lines scroll sideways). ANSI colours are rendered
 * per line with ansi_up (an SGR state does not carry over to the next line).
 */
export class LogView {
  readonly element: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly rows: HTMLElement;
  private readonly ansi = new AnsiUp();
  private readonly resize = new ResizeObserver(() => this.schedule());
  private text: string[] = [];
  private stream = new Uint8Array(1024);
  private time = new Float64Array(1024);
  private rowHeight = 18;
  private following = true;
  private frame = 0;
  private timestamps = false;
  private renderedMaxScroll = 0;
  /** Called when following starts or stops (the reader scrolled up, or back to the bottom). */
  onFollowChange: (following: boolean) => void = () => undefined;

  constructor() {
    this.ansi.use_classes = true;
    this.element = document.createElement('div');
    this.element.className = 'log';
    this.element.tabIndex = 0;
    this.element.setAttribute('role', 'region');
    this.element.setAttribute('aria-label', 'Job output (arrow keys and Page Up/Down scroll)');
    this.spacer = document.createElement('div');
    this.spacer.className = 'log-spacer';
    this.rows = document.createElement('div');
    this.rows.className = 'log-rows';
    this.element.append(this.spacer, this.rows);
    this.element.addEventListener(
      'scroll',
      () => {
        const following = this.isAtBottom();
        if (following !== this.following) {
          this.following = following;
          this.onFollowChange(following);
        }
        this.schedule();
      },
      { passive: true },
    );
    this.resize.observe(this.element);
  }

  get length(): number {
    return this.text.length;
  }

  get isFollowing(): boolean {
    return this.following;
  }

  append(lines: LogEvent[]): void {
    const needed = this.text.length + lines.length;
    if (needed > this.stream.length) {
      const size = Math.max(needed, this.stream.length * 2);
      const stream = new Uint8Array(size);
      stream.set(this.stream);
      this.stream = stream;
      const time = new Float64Array(size);
      time.set(this.time);
      this.time = time;
    }
    for (const l of lines) {
      const i = this.text.length;
      this.text.push(l.line);
      this.stream[i] = Math.max(0, STREAMS.indexOf(l.stream));
      this.time[i] = l.ts;
    }
    this.schedule();
  }

  setTimestamps(on: boolean): void {
    this.timestamps = on;
    this.element.classList.toggle('with-ts', on);
    this.schedule();
  }

  /** Scrolls to the last line and follows new ones again. */
  jumpToEnd(): void {
    this.following = true;
    this.onFollowChange(true);
    this.render();
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
    this.resize.disconnect();
  }

  private isAtBottom(): boolean {
    // Against the height last rendered, not the lines appended since (a scroll event arrives after
    // the render that caused it), nor scrollHeight (the rows may overhang the content by a row).
    return this.element.scrollTop >= this.renderedMaxScroll - this.rowHeight;
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  private geometry() {
    const clientHeight = this.element.clientHeight;
    const contentHeight = Math.min(this.text.length * this.rowHeight, MAX_SCROLL_PX);
    return {
      clientHeight,
      contentHeight,
      maxScroll: Math.max(0, contentHeight - clientHeight),
      visibleRows: clientHeight / this.rowHeight,
    };
  }

  private render(): void {
    const measured = this.rows.firstElementChild?.getBoundingClientRect().height;
    if (measured && Math.abs(measured - this.rowHeight) > 0.5) this.rowHeight = measured;
    const { contentHeight, maxScroll, visibleRows } = this.geometry();
    this.spacer.style.height = `${contentHeight}px`;
    this.renderedMaxScroll = maxScroll;
    if (this.following) this.element.scrollTop = maxScroll;
    const scrollTop = Math.min(this.element.scrollTop, maxScroll);
    // Which line is at the top: proportional, so a log taller than MAX_SCROLL_PX still reaches every line.
    const exact = maxScroll > 0 ? (scrollTop / maxScroll) * Math.max(0, this.text.length - visibleRows) : 0;
    const first = Math.floor(exact);
    const last = Math.min(this.text.length, first + Math.ceil(visibleRows) + 2);
    this.rows.style.transform = `translateY(${scrollTop - (exact - first) * this.rowHeight}px)`;
    let html = '';
    for (let i = first; i < last; i++) html += this.row(i);
    this.rows.innerHTML = html;
  }

  private row(i: number): string {
    const stream = STREAMS[this.stream[i]!]!;
    const line = this.text[i]!;
    let body: string;
    if (line.includes('\x1b')) {
      body = this.ansi.ansi_to_html(line);
      // Each line starts plain: reset whatever SGR state (or half sequence) this one left behind.
      this.ansi.ansi_to_html('\x1b[0m');
    } else {
      body = escapeHtml(line);
    }
    const ts = this.timestamps ? `<span class="ts">${formatTime(this.time[i]!)}</span>` : '';
    const mark =
      stream === 'stdout' ? '' : `<span class="mark" title="${stream}">${stream === 'stderr' ? 'err' : 'sys'}</span>`;
    return `<div class="ln ${stream}" data-stream="${stream}" data-line="${i + 1}"><span class="no">${i + 1}</span>${ts}${mark}<span class="tx">${body}</span></div>`;
  }
}
