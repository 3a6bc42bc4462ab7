import './style.css';
import { clearToken, getToken, UNAUTHORIZED_EVENT } from './api.js';
import { jobView } from './job.js';
import { listView } from './list.js';
import { schedulesView } from './schedules.js';
import { pipelinesView, pipelineView } from './pipeline.js';
import { submitView } from './submit.js';
import { tokenView } from './token.js';

/**
 * Hash routes, so the page is one document at `/` and never collides with the JSON API's paths:
 * `#/` (list, `?state=&label=`), `#/new` (submit), `#/jobs/<id>` (one job), `#/schedules`,
 * `#/pipelines` and `#/pipelines/<id>` (one pipeline).
 */
const main = document.getElementById('main')!;
const signOut = document.getElementById('sign-out')!;
let cleanup: () => void = () => undefined;

function route(message?: string): void {
  cleanup();
  signOut.hidden = !getToken();
  if (!getToken()) {
    cleanup = tokenView(main, () => route(), message);
    return;
  }
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path = '/', search = ''] = hash.split('?', 2);
  const job = /^\/jobs\/([^/]+)$/.exec(path);
  const pipeline = /^\/pipelines\/([^/]+)$/.exec(path);
  if (job) cleanup = jobView(main, decodeURIComponent(job[1]!));
  else if (pipeline) cleanup = pipelineView(main, decodeURIComponent(pipeline[1]!));
  else if (path === '/pipelines') cleanup = pipelinesView(main);
  else if (path === '/new') cleanup = submitView(main);
  else if (path === '/schedules') cleanup = schedulesView(main);
  else cleanup = listView(main, new URLSearchParams(search));
  document.title = job
    ? 'Job · Hodei Jobs'
    : path === '/new'
      ? 'New job · Hodei Jobs'
      : path === '/schedules'
        ? 'Schedules · Hodei Jobs'
        : 'Jobs · Hodei Jobs';
}

// The skip link must not change the hash: the hash is the route.
document.querySelector('a.skip')?.addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', () => {
  route();
  main.focus({ preventScroll: true });
});
window.addEventListener(UNAUTHORIZED_EVENT, () => route('The API refused that token. Enter a valid one.'));
signOut.addEventListener('click', () => {
  clearToken();
  route();
});
route();
