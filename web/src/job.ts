import { ApiError, cancelJob, getArtifacts, getJob, pageConfig, request, TERMINAL, type Job } from './api.js';
import { alertBox, badge, formatDate, formatDuration, h, labelList } from './dom.js';
import { followLog, type FollowStatus } from './live.js';
import { LogView } from './log-view.js';

const REFRESH_MS = 1000;

function temporalUrl(job: Job): string | undefined {
  const { temporalUiUrl, namespace = 'default' } = pageConfig();
  if (!temporalUiUrl) return undefined;
  const base = temporalUiUrl.replace(/\/+$/, '');
  const wf = job.workflow;
  return `${base}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(wf.workflowId)}/${encodeURIComponent(wf.runId)}/history`;
}

const STATUS_TEXT: Record<FollowStatus, string> = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  ended: 'complete',
  failed: 'unavailable',
};

/**
 * From submission to the script's start; still counting only while the job waits. A job that ran
 * without a known start (the API could not tell it) shows none rather than a count that never stops.
 */
function queuedFor(j: Job): string {
  if (j.startedAt) return formatDuration(j.createdAt, j.startedAt);
  if (j.state === 'QUEUED' || j.state === 'PROVISIONING') return formatDuration(j.createdAt, undefined);
  // Ended without ever running (cancelled or failed while queued): queued all its life.
  if (TERMINAL.includes(j.state) && j.host === undefined) return formatDuration(j.createdAt, j.finishedAt);
  return '—';
}

/** One job: details refreshed while it runs, its live log, cancel. */
export function jobView(main: HTMLElement, id: string): () => void {
  const stop = new AbortController();
  let job: Job | undefined;
  let timer = 0;

  const title = h('h1', { className: 'job-title' }, id);
  const stateSlot = h('span', { id: 'job-state', 'aria-live': 'polite' });
  const cancelButton = h('button', { type: 'button', className: 'danger', hidden: true }, 'Cancel job');
  const temporalLink = h(
    'a',
    { className: 'button', target: '_blank', rel: 'noopener', hidden: true },
    'Open in Temporal UI',
  );
  const details = h('dl', { className: 'details' });
  const message = h('div');
  const artifactsSection = h('section', { className: 'artifacts', 'aria-label': 'Artifacts', hidden: true });
  let artifactsShown = false;

  const log = new LogView();
  const lineCount = h('span', { className: 'muted', id: 'line-count' }, '0 lines');
  const followStatus = h('span', { className: 'follow', id: 'follow-status' }, STATUS_TEXT.connecting);
  const tsToggle = h('input', { type: 'checkbox', id: 'show-ts' });
  tsToggle.addEventListener('change', () => log.setTimestamps(tsToggle.checked));
  const jumpButton = h('button', { type: 'button', id: 'jump-end', hidden: true }, 'Jump to end ↓');
  jumpButton.addEventListener('click', () => {
    log.jumpToEnd();
    log.element.focus();
  });
  log.onFollowChange = (following) => {
    jumpButton.hidden = following;
  };
  const downloadButton = h('button', { type: 'button', id: 'download' }, 'Download raw log');
  downloadButton.addEventListener('click', () => void download());

  // Confirmation for cancel: a modal <dialog> traps focus and closes on Escape.
  const dialog = h(
    'dialog',
    { 'aria-labelledby': 'cancel-title' },
    h(
      'form',
      { method: 'dialog' },
      h('h2', { id: 'cancel-title' }, 'Cancel this job?'),
      h('p', {}, 'The script gets SIGTERM, then SIGKILL after its grace period, and its container is removed.'),
      h(
        'div',
        { className: 'actions' },
        h('button', { value: 'keep', autofocus: true }, 'Keep running'),
        h('button', { value: 'cancel', className: 'danger' }, 'Cancel job'),
      ),
    ),
  );
  cancelButton.addEventListener('click', () => dialog.showModal());
  dialog.addEventListener('close', () => {
    if (dialog.returnValue === 'cancel') void doCancel();
    dialog.returnValue = '';
  });

  main.replaceChildren(
    h('p', { className: 'crumbs' }, h('a', { href: '#/' }, '← Jobs')),
    h(
      'div',
      { className: 'page-head' },
      title,
      stateSlot,
      h('div', { className: 'head-actions' }, temporalLink, cancelButton),
    ),
    message,
    details,
    artifactsSection,
    h(
      'section',
      { className: 'log-section', 'aria-label': 'Output' },
      h(
        'div',
        { className: 'log-bar' },
        h('h2', {}, 'Output'),
        followStatus,
        lineCount,
        h('span', { className: 'spacer' }),
        h('label', { className: 'check' }, tsToggle, ' Timestamps'),
        jumpButton,
        downloadButton,
      ),
      log.element,
      h(
        'p',
        { className: 'legend muted' },
        h('span', { className: 'key stderr' }, 'err'),
        ' stderr  ',
        h('span', { className: 'key system' }, 'sys'),
        ' platform message',
      ),
    ),
    dialog,
  );

  const renderJob = (j: Job) => {
    job = j;
    title.textContent = j.name;
    document.title = `${j.name} · ${j.state} · Hodei Jobs`;
    stateSlot.replaceChildren(badge(j.state));
    cancelButton.hidden = TERMINAL.includes(j.state) || j.state === 'CANCELLING';
    const url = temporalUrl(j);
    if (url) {
      temporalLink.href = url;
      temporalLink.hidden = false;
    }
    const row = (term: string, value: Node | string) => [h('dt', {}, term), h('dd', {}, value)];
    details.replaceChildren(
      ...row('State', badge(j.state)),
      ...row('Exit code', j.exitCode === undefined ? '—' : String(j.exitCode)),
      ...(j.reason ? row('Reason', j.reason) : []),
      ...row('Created', formatDate(j.createdAt)),
      ...row('Started', formatDate(j.startedAt)),
      ...row('Finished', formatDate(j.finishedAt)),
      ...row('Run time', formatDuration(j.startedAt, j.finishedAt)),
      ...row('Queued for', queuedFor(j)),
      ...row('Host', j.host ?? '—'),
      ...row('Attempt', j.attempt === undefined ? '—' : String(j.attempt)),
      ...row(
        'Usage',
        j.usage ? `${j.usage.cpuSeconds.toFixed(2)} s CPU · ${formatBytes(j.usage.maxMemoryBytes)} peak memory` : '—',
      ),
      ...row('Image', j.image ?? '—'),
      ...row('Priority', String(j.priority ?? 3)),
      ...(j.fairnessKey === undefined ? [] : row('Fairness', `${j.fairnessKey} (weight ${j.fairnessWeight ?? 1})`)),
      ...(j.startAt === undefined ? [] : row('Start at', formatDate(j.startAt))),
      ...row('Labels', labelList(j.labels)),
      ...row('Job id', h('code', {}, j.id)),
    );
  };

  /** The artifact list with sizes and download buttons, once the job has ended. */
  const showArtifacts = async (j: Job) => {
    if (artifactsShown || !TERMINAL.includes(j.state) || !j.artifacts) return;
    artifactsShown = true;
    const list = await getArtifacts(j.id);
    const items = list.artifacts.map((a) => {
      const button = h('button', { type: 'button', className: 'link' }, a.path);
      button.addEventListener(
        'click',
        () =>
          void downloadFile(
            `/jobs/${encodeURIComponent(j.id)}/artifacts/${a.path.split('/').map(encodeURIComponent).join('/')}`,
            a.path.slice(a.path.lastIndexOf('/') + 1),
          ),
      );
      return h('li', {}, button, ' ', h('span', { className: 'muted' }, formatBytes(a.size)));
    });
    const notes = [
      ...(j.artifacts.skipped ? [h('p', { className: 'muted' }, j.artifacts.skipped)] : []),
      ...(list.truncated ? [h('p', { className: 'muted' }, 'Some files were left out: see the output.')] : []),
    ];
    artifactsSection.replaceChildren(
      h('h2', {}, 'Artifacts'),
      items.length > 0
        ? h('ul', { className: 'artifact-list' }, ...items)
        : h('p', { className: 'muted' }, 'None kept.'),
      ...notes,
    );
    artifactsSection.hidden = false;
  };

  const refresh = async () => {
    clearTimeout(timer);
    try {
      renderJob(await getJob(id));
      message.replaceChildren();
      if (job) await showArtifacts(job);
    } catch (err) {
      if (stop.signal.aborted) return;
      if (err instanceof ApiError && err.status === 404) {
        message.replaceChildren(alertBox(`No job ${id}.`));
        return;
      }
      message.replaceChildren(alertBox(`Could not load the job: ${(err as Error).message}`));
    }
    if (!stop.signal.aborted && !(job && TERMINAL.includes(job.state)))
      timer = window.setTimeout(() => void refresh(), REFRESH_MS);
  };

  const doCancel = async () => {
    cancelButton.disabled = true;
    try {
      renderJob(await cancelJob(id));
      message.replaceChildren(alertBox('Cancellation requested.', 'info'));
    } catch (err) {
      message.replaceChildren(alertBox(`Cancel failed: ${(err as Error).message}`));
    } finally {
      cancelButton.disabled = false;
    }
    void refresh();
  };

  /** Downloads an API resource with the token (a plain link could not send it). */
  const downloadFile = async (path: string, name: string) => {
    try {
      const res = await request(path);
      if (!res.ok) throw new Error(`${res.status}`);
      const url = URL.createObjectURL(await res.blob());
      const a = h('a', { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      message.replaceChildren(alertBox(`Download failed: ${(err as Error).message}`));
    }
  };

  const download = async () => {
    downloadButton.disabled = true;
    try {
      await downloadFile(`/jobs/${encodeURIComponent(id)}/logs`, `${id}.log`);
    } finally {
      downloadButton.disabled = false;
    }
  };

  const numberFormat = new Intl.NumberFormat();
  let reconnects = 0;
  void followLog(
    id,
    {
      onLines(lines) {
        log.append(lines);
        lineCount.textContent = `${numberFormat.format(log.length)} lines`;
      },
      onEnd() {
        void refresh();
      },
      onStatus(status, detail) {
        if (status === 'reconnecting' && followStatus.dataset.status !== 'reconnecting') {
          reconnects += 1;
          followStatus.dataset.reconnects = String(reconnects);
          followStatus.title = `connection lost ${reconnects}× and resumed after the last line received`;
        }
        followStatus.textContent = STATUS_TEXT[status] + (detail ? `: ${detail}` : '');
        followStatus.dataset.status = status;
      },
    },
    stop.signal,
  );
  void refresh();

  return () => {
    stop.abort();
    clearTimeout(timer);
    log.destroy();
    if (dialog.open) dialog.close();
  };
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
