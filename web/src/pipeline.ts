import {
  ApiError,
  cancelPipeline,
  getPipeline,
  listPipelines,
  PIPELINE_TERMINAL_STATES,
  type JobState,
  type Pipeline,
} from './api.js';
import { alertBox, badge, formatDate, h, labelList } from './dom.js';

const REFRESH_MS = 1000;

// A step's SKIPPED has no job state of its own; it reads like CANCELLED's neutral badge.
const stepBadge = (state: string) => badge(state as JobState);

const seconds = (ms: number | undefined) => (ms === undefined ? '—' : `${(ms / 1000).toFixed(1)} s`);

/** One pipeline: its steps in order with states, durations and links to each step's job and live log. */
export function pipelineView(main: HTMLElement, id: string): () => void {
  let timer = 0;
  let stopped = false;
  let current: Pipeline | undefined;
  const title = h('h1', { className: 'job-title' }, id);
  const stateSlot = h('span', { id: 'pipeline-state', 'aria-live': 'polite' });
  const cancelButton = h('button', { type: 'button', className: 'danger', hidden: true }, 'Cancel pipeline');
  const message = h('div');
  const details = h('dl', { className: 'details' });
  const tbody = h('tbody');
  main.replaceChildren(
    h('p', { className: 'crumbs' }, h('a', { href: '#/pipelines' }, '← Pipelines')),
    h('div', { className: 'page-head' }, title, stateSlot, h('div', { className: 'head-actions' }, cancelButton)),
    message,
    details,
    h(
      'div',
      { className: 'table-wrap' },
      h(
        'table',
        { className: 'jobs', id: 'steps' },
        h('caption', { className: 'sr-only' }, 'Steps, in order'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['Step', 'State', 'Needs', 'Duration', 'Started', 'Job'].map((c) => h('th', { scope: 'col' }, c)),
          ),
        ),
        tbody,
      ),
    ),
  );

  const render = (p: Pipeline) => {
    current = p;
    title.textContent = p.name;
    document.title = `${p.name} · ${p.state} · Hodei Jobs`;
    stateSlot.replaceChildren(badge(p.state));
    cancelButton.hidden = PIPELINE_TERMINAL_STATES.includes(p.state);
    const row = (term: string, value: Node | string) => [h('dt', {}, term), h('dd', {}, value)];
    details.replaceChildren(
      ...row('State', badge(p.state)),
      ...(p.reason ? row('Reason', p.reason) : []),
      ...row('Created', formatDate(p.createdAt)),
      ...row('Finished', formatDate(p.finishedAt)),
      ...row('Duration', seconds(p.durationMs)),
      ...row('Critical path', `${p.criticalPath.steps.join(' → ') || '—'} (${seconds(p.criticalPath.durationMs)})`),
      ...row('Labels', labelList(p.labels)),
      ...row('Pipeline id', h('code', {}, p.id)),
    );
    tbody.replaceChildren(
      ...p.steps.map((s) =>
        h(
          'tr',
          { 'data-step': s.name },
          h(
            'td',
            { className: 'name' },
            s.name,
            s.allowFailure ? h('span', { className: 'muted' }, ' (may fail)') : null,
          ),
          h('td', {}, stepBadge(s.state), s.reason ? h('div', { className: 'muted' }, s.reason) : null),
          h('td', {}, s.needs.join(', ') || '—'),
          h('td', {}, seconds(s.durationMs)),
          h('td', {}, formatDate(s.startedAt)),
          h('td', {}, s.jobId ? h('a', { href: `#/jobs/${encodeURIComponent(s.jobId)}` }, 'job & live log') : '—'),
        ),
      ),
    );
  };

  const refresh = async () => {
    clearTimeout(timer);
    try {
      render(await getPipeline(id));
      message.replaceChildren();
    } catch (err) {
      if (stopped) return;
      if (err instanceof ApiError && err.status === 404) {
        message.replaceChildren(alertBox(`No pipeline ${id}.`));
        return;
      }
      message.replaceChildren(alertBox(`Could not load the pipeline: ${(err as Error).message}`));
    }
    if (!stopped && !(current && PIPELINE_TERMINAL_STATES.includes(current.state)))
      timer = window.setTimeout(() => void refresh(), REFRESH_MS);
  };
  cancelButton.addEventListener('click', () => {
    cancelButton.disabled = true;
    cancelPipeline(id)
      .then(() => refresh())
      .catch((err: unknown) => message.replaceChildren(alertBox(`Could not cancel: ${(err as Error).message}`)))
      .finally(() => (cancelButton.disabled = false));
  });
  void refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** The pipelines, newest first. */
export function pipelinesView(main: HTMLElement): () => void {
  let stopped = false;
  const message = h('div');
  const tbody = h('tbody');
  main.replaceChildren(
    h('h1', {}, 'Pipelines'),
    message,
    h(
      'div',
      { className: 'table-wrap' },
      h(
        'table',
        { className: 'jobs' },
        h('caption', { className: 'sr-only' }, 'Pipelines, newest first'),
        h('thead', {}, h('tr', {}, ...['Name', 'State', 'Steps', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
        tbody,
      ),
    ),
  );
  listPipelines()
    .then((page) => {
      if (stopped) return;
      tbody.replaceChildren(
        ...page.pipelines.map((p) =>
          h(
            'tr',
            {},
            h('td', { className: 'name' }, h('a', { href: `#/pipelines/${encodeURIComponent(p.id)}` }, p.name)),
            h('td', {}, badge(p.state)),
            h('td', {}, String(p.steps.length)),
            h('td', {}, formatDate(p.createdAt)),
          ),
        ),
      );
      if (page.pipelines.length === 0) message.replaceChildren(alertBox('No pipelines yet.', 'info'));
    })
    .catch((err: unknown) => message.replaceChildren(alertBox(`Could not list pipelines: ${(err as Error).message}`)));
  return () => {
    stopped = true;
  };
}
