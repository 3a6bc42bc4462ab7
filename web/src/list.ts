import { LISTABLE_STATES, listJobs, type Job } from './api.js';

/** The list cannot tell PROVISIONING from QUEUED (Temporal visibility keeps QUEUED until the script runs). */
const FILTER_STATES = LISTABLE_STATES;
import { alertBox, badge, formatDate, formatDuration, h, labelList } from './dom.js';

const PAGE_SIZE = 20;
const REFRESH_MS = 2000;

/** The job list: newest first, filters by state and label, cursor paging (`limit` per page), refreshed every 2 s. */
export function listView(main: HTMLElement, query: URLSearchParams): () => void {
  const state = query.get('state') ?? '';
  const label = query.get('label') ?? '';
  const limit = Math.min(100, Math.max(1, Number(query.get('limit')) || PAGE_SIZE));
  // Cursors of the pages before this one, so "Newer" can go back.
  const cursors: (string | undefined)[] = [];
  let cursor: string | undefined;
  let nextCursor: string | undefined;
  let shown = '';
  let timer = 0;
  let stopped = false;

  const stateSelect = h(
    'select',
    { id: 'f-state', name: 'state' },
    h('option', { value: '' }, 'any state'),
    ...FILTER_STATES.map((s) => h('option', { value: s }, s === 'QUEUED' ? 'QUEUED (incl. provisioning)' : s)),
  );
  stateSelect.value = state;
  const labelInput = h('input', {
    id: 'f-label',
    name: 'label',
    placeholder: 'key:value',
    value: label,
    autocomplete: 'off',
  });
  const filters = h(
    'form',
    { className: 'filters', role: 'search', 'aria-label': 'Filter jobs' },
    h('div', { className: 'field' }, h('label', { for: 'f-state' }, 'State'), stateSelect),
    h('div', { className: 'field' }, h('label', { for: 'f-label' }, 'Label'), labelInput),
    h('button', { type: 'submit' }, 'Filter'),
    state || label ? h('a', { href: '#/', className: 'button' }, 'Clear') : null,
  );
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    if (stateSelect.value) params.set('state', stateSelect.value);
    if (labelInput.value.trim()) params.set('label', labelInput.value.trim());
    if (limit !== PAGE_SIZE) params.set('limit', String(limit));
    location.hash = `#/${params.size ? `?${params}` : ''}`;
  });

  const tbody = h('tbody');
  const table = h(
    'table',
    { className: 'jobs' },
    h('caption', { className: 'sr-only' }, 'Jobs, newest first'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['Job', 'State', 'Created', 'Duration', 'Exit', 'Labels'].map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    tbody,
  );
  const status = h('div', { className: 'list-status', 'aria-live': 'polite' });
  const newer = h('button', { type: 'button', disabled: true }, '← Newer');
  const older = h('button', { type: 'button', disabled: true }, 'Older →');
  const pageNo = h('span', { className: 'muted' });
  newer.addEventListener('click', () => {
    cursor = cursors.pop();
    void load(true);
  });
  older.addEventListener('click', () => {
    if (nextCursor) {
      cursors.push(cursor);
      cursor = nextCursor;
      void load(true);
    }
  });

  main.replaceChildren(
    h(
      'div',
      { className: 'page-head' },
      h('h1', {}, 'Jobs'),
      h('a', { href: '#/new', className: 'button primary' }, 'New job'),
    ),
    filters,
    status,
    h('div', { className: 'table-wrap' }, table),
    h('nav', { className: 'pager', 'aria-label': 'Pages' }, newer, pageNo, older),
  );

  const render = (jobs: Job[]) => {
    const focusedId = (document.activeElement as HTMLElement | null)?.dataset?.jobId;
    const now = Date.now();
    tbody.replaceChildren(
      ...jobs.map((job) =>
        h(
          'tr',
          { 'data-job-id': job.id },
          h(
            'td',
            { className: 'name' },
            h('a', { href: `#/jobs/${encodeURIComponent(job.id)}`, 'data-job-id': job.id }, job.name),
            h('div', { className: 'muted id' }, job.id),
          ),
          h('td', {}, badge(job.state)),
          h('td', {}, formatDate(job.createdAt)),
          h('td', { className: 'opt' }, formatDuration(job.startedAt, job.finishedAt, now)),
          h('td', {}, job.exitCode ?? '—'),
          h('td', { className: 'opt' }, labelList(job.labels)),
        ),
      ),
    );
    if (jobs.length === 0)
      tbody.append(
        h(
          'tr',
          {},
          h(
            'td',
            { colspan: 6, className: 'muted empty' },
            state || label ? 'No job matches these filters.' : 'No jobs yet.',
          ),
        ),
      );
    if (focusedId) tbody.querySelector<HTMLElement>(`a[data-job-id="${CSS.escape(focusedId)}"]`)?.focus();
  };

  const load = async (navigated = false) => {
    clearTimeout(timer);
    try {
      const page = await listJobs({ state, label, limit, cursor });
      if (stopped) return;
      nextCursor = page.nextCursor;
      const signature = JSON.stringify(page.jobs);
      if (signature !== shown || navigated) {
        shown = signature;
        render(page.jobs);
      }
      status.replaceChildren();
      newer.disabled = cursors.length === 0;
      older.disabled = !nextCursor;
      pageNo.textContent = `page ${cursors.length + 1}`;
    } catch (err) {
      if (stopped) return;
      status.replaceChildren(alertBox(`Could not load jobs: ${(err as Error).message}`));
    }
    if (!stopped) timer = window.setTimeout(() => void load(), REFRESH_MS);
  };
  void load(true);

  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
