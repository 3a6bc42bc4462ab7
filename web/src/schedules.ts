import { listSchedules, scheduleAction, type Schedule } from './api.js';
import { alertBox, badge, formatDate, h } from './dom.js';

const REFRESH_MS = 3000;
const NEXT_SHOWN = 3;

/** When a schedule fires, in words: `every 5m` or its cron expressions, and the zone they are read in. */
function timing(s: Schedule): string {
  const when = s.spec.every ? `every ${s.spec.every}` : [s.spec.cron ?? []].flat().join('; ');
  return s.spec.timezone ? `${when} (${s.spec.timezone})` : when;
}

/** The schedules: when each fires, its next runs and latest jobs, with pause/unpause/trigger; refreshed every 3 s. */
export function schedulesView(main: HTMLElement): () => void {
  let timer = 0;
  let stopped = false;
  let shown = '';
  const status = h('div', { className: 'list-status', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const table = h(
    'table',
    { className: 'jobs schedules' },
    h('caption', { className: 'sr-only' }, 'Schedules'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['Schedule', 'When', 'Next runs', 'Recent jobs', 'Actions'].map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    tbody,
  );
  main.replaceChildren(
    h('div', { className: 'page-head' }, h('h1', {}, 'Schedules')),
    status,
    h('div', { className: 'table-wrap' }, table),
  );

  const act = async (s: Schedule, action: 'pause' | 'unpause' | 'trigger') => {
    try {
      await scheduleAction(s.id, action);
      status.replaceChildren(
        alertBox(`Schedule ${s.id} ${action === 'trigger' ? 'triggered' : `${action}d`}.`, 'info'),
      );
    } catch (err) {
      status.replaceChildren(alertBox(`Could not ${action} ${s.id}: ${(err as Error).message}`));
    }
    void load(true);
  };

  const row = (s: Schedule) =>
    h(
      'tr',
      { 'data-schedule-id': s.id },
      h(
        'td',
        { className: 'name' },
        h('strong', {}, s.id),
        s.paused ? h('span', { className: 'badge', 'data-paused': 'true' }, 'PAUSED') : null,
        h('div', { className: 'muted' }, s.job.name),
        s.note ? h('div', { className: 'muted' }, s.note) : null,
      ),
      h('td', {}, timing(s), h('div', { className: 'muted' }, `overlap: ${s.overlap}`)),
      h(
        'td',
        {},
        s.nextRuns.length
          ? h(
              'ul',
              { className: 'labels next-runs' },
              ...s.nextRuns.slice(0, NEXT_SHOWN).map((t) => h('li', {}, h('time', { datetime: t }, formatDate(t)))),
            )
          : h('span', { className: 'muted' }, '—'),
      ),
      h(
        'td',
        {},
        s.recentJobs.length
          ? h(
              'ul',
              { className: 'labels recent-jobs' },
              ...s.recentJobs
                .slice(-5)
                .reverse()
                .map((j) =>
                  h(
                    'li',
                    {},
                    h('a', { href: `#/jobs/${encodeURIComponent(j.id)}` }, formatDate(j.startedAt ?? undefined)),
                    ' ',
                    badge(j.state),
                  ),
                ),
            )
          : h('span', { className: 'muted' }, 'none yet'),
      ),
      h(
        'td',
        { className: 'actions' },
        s.paused
          ? h('button', { type: 'button', onclick: () => void act(s, 'unpause') }, 'Unpause')
          : h('button', { type: 'button', onclick: () => void act(s, 'pause') }, 'Pause'),
        h('button', { type: 'button', onclick: () => void act(s, 'trigger') }, 'Trigger'),
      ),
    );

  const load = async (force = false) => {
    clearTimeout(timer);
    try {
      const schedules: Schedule[] = [];
      let cursor: string | undefined;
      do {
        const page = await listSchedules(cursor);
        schedules.push(...page.schedules);
        cursor = page.nextCursor;
      } while (cursor);
      if (stopped) return;
      const signature = JSON.stringify(schedules);
      if (signature !== shown || force) {
        shown = signature;
        tbody.replaceChildren(...schedules.map(row));
        if (schedules.length === 0)
          tbody.append(h('tr', {}, h('td', { colspan: 5, className: 'muted empty' }, 'No schedules yet.')));
      }
    } catch (err) {
      if (stopped) return;
      status.replaceChildren(alertBox(`Could not load schedules: ${(err as Error).message}`));
    }
    if (!stopped) timer = window.setTimeout(() => void load(), REFRESH_MS);
  };
  void load(true);

  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
