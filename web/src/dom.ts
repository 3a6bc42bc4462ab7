import type { JobState } from './api.js';

type Child = Node | string | number | null | undefined | false;
type Props = Record<string, string | number | boolean | EventListener | undefined>;

/** Creates an element: `h('a', { href: '#/' }, 'Jobs')`. Props starting with `on` are listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'className') el.className = String(value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'number' ? String(child) : child);
  }
  return el;
}

export function badge(state: JobState): HTMLElement {
  return h('span', { className: `badge state-${state.toLowerCase()}`, 'data-state': state }, state);
}

export function formatDate(iso: string | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function formatDuration(fromIso: string | undefined, toIso: string | undefined, now = Date.now()): string {
  if (!fromIso) return '—';
  const ms = (toIso ? Date.parse(toIso) : now) - Date.parse(fromIso);
  if (!Number.isFinite(ms)) return '—';
  // Start and end come from different clocks (Docker's, the worker's): a very short run can read as negative.
  if (ms < 0) return ms > -1000 ? '< 1 s' : '—';
  if (ms < 1000) return `${ms} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function labelList(labels: Record<string, string>): HTMLElement {
  const entries = Object.entries(labels);
  if (entries.length === 0) return h('span', { className: 'muted' }, '—');
  return h('ul', { className: 'labels' }, ...entries.map(([k, v]) => h('li', {}, `${k}: ${v}`)));
}

/** A message for the reader, read out by screen readers. */
export function alertBox(message: string, kind: 'error' | 'info' = 'error'): HTMLElement {
  return h('p', { className: `alert ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
}
