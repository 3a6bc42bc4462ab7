import type { JobSpec } from '../../api-client/index.js';
import { ApiError, submitJob } from './api.js';
import { alertBox, h } from './dom.js';

/** Parses `KEY=value` lines (blank lines and `#` comments skipped). */
export function parsePairs(text: string, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`${what}, line ${n + 1}: expected NAME=value`);
    out[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return out;
}

/** The submit form: script, env, image, timeout (and name, labels). */
export function submitView(main: HTMLElement): () => void {
  const field = (id: string, label: string, control: HTMLElement, hint?: string) =>
    h(
      'div',
      { className: 'field' },
      h('label', { for: id }, label),
      control,
      hint ? h('small', { id: `${id}-hint`, className: 'muted' }, hint) : null,
    );
  const script = h('textarea', {
    id: 's-script',
    name: 'script',
    rows: 10,
    required: true,
    spellcheck: 'false',
    className: 'mono',
  });
  script.value = '#!/bin/bash\necho "hello from $(hostname)"\n';
  const name = h('input', {
    id: 's-name',
    name: 'name',
    autocomplete: 'off',
    placeholder: 'first command of the script',
  });
  const image = h('input', {
    id: 's-image',
    name: 'image',
    autocomplete: 'off',
    placeholder: 'the default worker image',
  });
  const timeout = h('input', {
    id: 's-timeout',
    name: 'timeoutSeconds',
    type: 'number',
    min: 1,
    max: 604800,
    step: 1,
    placeholder: '3600',
    'aria-describedby': 's-timeout-hint',
  });
  const env = h('textarea', {
    id: 's-env',
    name: 'env',
    rows: 3,
    spellcheck: 'false',
    className: 'mono',
    placeholder: 'FOO=bar',
    'aria-describedby': 's-env-hint',
  });
  const labels = h('textarea', {
    id: 's-labels',
    name: 'labels',
    rows: 2,
    spellcheck: 'false',
    className: 'mono',
    placeholder: 'team=data',
    'aria-describedby': 's-labels-hint',
  });
  const errors = h('div');
  const submit = h('button', { type: 'submit', className: 'primary' }, 'Submit job');
  const form = h(
    'form',
    { className: 'card submit-form', 'aria-labelledby': 'submit-title' },
    h('h1', { id: 'submit-title' }, 'New job'),
    errors,
    field('s-script', 'Script', script),
    h(
      'div',
      { className: 'grid' },
      field('s-name', 'Name', name),
      field('s-image', 'Image', image),
      field('s-timeout', 'Timeout (seconds)', timeout, "Counted from the run's start on its host; default 3600."),
    ),
    h(
      'div',
      { className: 'grid two' },
      field('s-env', 'Environment', env, 'One NAME=value per line.'),
      field('s-labels', 'Labels', labels, 'One key=value per line; filter the list by key:value.'),
    ),
    h('div', { className: 'actions' }, submit, h('a', { href: '#/', className: 'button' }, 'Back to jobs')),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void (async () => {
      errors.replaceChildren();
      let spec: JobSpec;
      try {
        spec = {
          script: script.value,
          env: parsePairs(env.value, 'Environment'),
          labels: parsePairs(labels.value, 'Labels'),
        };
        if (name.value.trim()) spec.name = name.value.trim();
        if (image.value.trim()) spec.image = image.value.trim();
        if (timeout.value) spec.timeoutSeconds = Number(timeout.value);
      } catch (err) {
        errors.replaceChildren(alertBox((err as Error).message));
        return;
      }
      submit.disabled = true;
      try {
        const job = await submitJob(spec);
        location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
      } catch (err) {
        const issues = err instanceof ApiError ? err.issues : [];
        errors.replaceChildren(
          alertBox(`The job was not submitted: ${(err as Error).message}`),
          issues.length
            ? h('ul', { className: 'issues' }, ...issues.map((i) => h('li', {}, `${i.path || 'spec'}: ${i.message}`)))
            : '',
        );
        submit.disabled = false;
      }
    })();
  });
  main.replaceChildren(form);
  script.focus();
  return () => undefined;
}
